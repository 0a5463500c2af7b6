"""GIFStream for Blender (bpy/mathutils only; the engine runs in its own process)."""

import bpy

from . import import_capture, preferences

CLASSES = (
    preferences.GIFSTREAM_OT_check_engine,
    preferences.GIFStreamPreferences,
    import_capture.IMPORT_SCENE_OT_gifstream_capture,
)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_import.append(import_capture.menu_import)


def unregister():
    bpy.types.TOPBAR_MT_file_import.remove(import_capture.menu_import)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
