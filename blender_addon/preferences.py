"""Add-on preferences: the engine's Python interpreter and a check button."""

import bpy

from . import engine_client


def addon_preferences(context):
    return context.preferences.addons[__package__].preferences


class GIFSTREAM_OT_check_engine(bpy.types.Operator):
    """Find the engine's Python and check that it imports gifstream_engine"""

    bl_idname = "gifstream.check_engine"
    bl_label = "Check Engine"

    def execute(self, context):
        try:
            python = engine_client.find_engine_python(addon_preferences(context).engine_python)
            version = engine_client.run_engine(python, ["--version"]).strip()
        except engine_client.EngineError as exc:
            self.report({"ERROR"}, f"GIFStream: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"GIFStream: {version} at {python}")
        return {"FINISHED"}


class GIFStreamPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    engine_python: bpy.props.StringProperty(
        name="Engine Python",
        description="Python interpreter that can import gifstream_engine (empty: $GIFSTREAM_ENGINE_PYTHON, then search)",
        subtype="FILE_PATH",
        default="",
    )

    def draw(self, context):
        row = self.layout.row()
        row.prop(self, "engine_python")
        row.operator(GIFSTREAM_OT_check_engine.bl_idname)
