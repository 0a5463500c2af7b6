"""GIFStream for Blender (bpy/mathutils only; the engine runs in its own process)."""

import atexit

import bpy

from . import compositing_layer, import_capture, import_sequence, preferences, sequence_ui, train_ui

CLASSES = (
    preferences.GIFSTREAM_OT_check_engine,
    preferences.GIFStreamPreferences,
    import_capture.IMPORT_SCENE_OT_gifstream_capture,
)


def _stop_engine_at_exit():
    for job in (train_ui.current_job(), import_sequence.current_decode(), compositing_layer.current_layer_job()):
        if job is not None and job.status == "running":
            job.cancel()


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_import.append(import_capture.menu_import)
    train_ui.register()
    sequence_ui.register()
    atexit.register(_stop_engine_at_exit)


def unregister():
    sequence_ui.unregister()
    train_ui.unregister()
    bpy.types.TOPBAR_MT_file_import.remove(import_capture.menu_import)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
