"""GIFStream for Blender (bpy/mathutils only; the engine runs in its own process).

Three parts: `core` (no bpy: the engine's process, the jobs, sequence files, conventions), `scene` (what the
add-on builds in Blender) and `ui` (operators, panels, preferences, menus). Everything is registered here.
"""

import atexit

import bpy

from . import ui


def _stop_jobs():
    """Never leave an orphan engine process (a cancelled training keeps its checkpoint)."""
    for job in ui.session_jobs():
        if job is not None and job.running:
            job.cancel()


def register():
    for cls in ui.CLASSES:
        bpy.utils.register_class(cls)
    for name, group in ui.SCENE_PROPERTIES.items():
        setattr(bpy.types.Scene, name, bpy.props.PointerProperty(type=group))
    for menu in ui.IMPORT_MENUS:
        bpy.types.TOPBAR_MT_file_import.append(menu)
    atexit.register(_stop_jobs)
    for handler in ui.LOAD_POST:
        bpy.app.handlers.load_post.append(handler)
        handler()  # the file open while the add-on is enabled


def unregister():
    atexit.unregister(_stop_jobs)
    _stop_jobs()
    for timer in ui.TIMERS:
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    for menu in reversed(ui.IMPORT_MENUS):
        bpy.types.TOPBAR_MT_file_import.remove(menu)
    for name in ui.SCENE_PROPERTIES:
        delattr(bpy.types.Scene, name)
    for handler in ui.LOAD_POST:
        if handler in bpy.app.handlers.load_post:
            bpy.app.handlers.load_post.remove(handler)
    for cls in reversed(ui.CLASSES):
        bpy.utils.unregister_class(cls)
