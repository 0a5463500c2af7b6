"""GIFStream for Blender (bpy/mathutils only; the engine runs in its own process).

This first version registers the add-on and its preferences (the engine's Python interpreter);
capture import, training and proxies arrive with their issues.
"""

import bpy


class GIFStreamPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    engine_python: bpy.props.StringProperty(
        name="Engine Python",
        description="Python interpreter that can import gifstream_engine (empty: search automatically)",
        subtype="FILE_PATH",
        default="",
    )

    def draw(self, context):
        self.layout.prop(self, "engine_python")


CLASSES = (GIFStreamPreferences,)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
