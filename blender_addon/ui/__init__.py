"""The add-on's user interface (bpy): operators, panels, preferences, menus and the timers that follow engine jobs.
Thin: the work is in `core` (the engine, its jobs) and `scene` (what is built in Blender). The add-on's
__init__.py registers what this exports."""

from . import compositing_layer, import_capture, import_sequence, preferences, sequence_panel, train_panel

# in registration order (panels show in the sidebar in this order)
CLASSES = (
    preferences.GIFSTREAM_OT_check_engine,
    preferences.GIFStreamPreferences,
    import_capture.IMPORT_SCENE_OT_gifstream_capture,
    *train_panel.CLASSES,
    import_sequence.IMPORT_SCENE_OT_gifstream_sequence,
    import_sequence.GIFSTREAM_OT_decode_cancel,
    sequence_panel.GIFSTREAM_OT_relocate_sequence,
    sequence_panel.GIFSTREAM_OT_match_scene,
    sequence_panel.GIFSTREAM_OT_show_as_captured,
    compositing_layer.GIFSTREAM_OT_render_compositing_layer,
    compositing_layer.GIFSTREAM_OT_layer_cancel,
    sequence_panel.GIFSTREAM_OT_export_farm_bundle,
    sequence_panel.VIEW3D_PT_gifstream_sequence,
)
IMPORT_MENUS = (import_capture.menu_import, import_sequence.menu_import)  # File > Import entries
SCENE_PROPERTIES = train_panel.SCENE_PROPERTIES  # bpy.types.Scene.<name>: PointerProperty(type=<class>)
TIMERS = (train_panel.poll_training, import_sequence.poll_decode, compositing_layer.poll_layer,
          sequence_panel.redraw_while_checking)


LOAD_POST = (preferences.playback_memory_for_file,)  # bpy.app.handlers.load_post (also run at registration)


def session_jobs() -> tuple:
    """The engine jobs of this Blender session (training, decode, compositing layer), None where none started."""
    return train_panel.current_job(), import_sequence.current_decode(), compositing_layer.current_layer_job()
