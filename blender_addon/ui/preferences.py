"""Add-on preferences: the engine's Python interpreter and a check button."""

import bpy

from ..core import engine_client
from ..scene import paths
from .common import fail

ADDON_ID = __package__.rpartition(".")[0]  # the add-on's package (this is its `ui` sub-package)


def addon_preferences(context):
    return context.preferences.addons[ADDON_ID].preferences


def engine_python(context) -> str:
    """The engine's Python: the preference, else $GIFSTREAM_ENGINE_PYTHON ('//' = next to the .blend), else a
    Python that imports the engine; `EngineError` when there is none."""
    return engine_client.find_engine_python(addon_preferences(context).engine_python, abspath=paths.absolute)


class GIFSTREAM_OT_check_engine(bpy.types.Operator):
    """Find the engine's Python, check that it imports gifstream_engine, and report what it trains and renders
    with (gifstream doctor): the rasteriser per device and what to do about each problem"""

    bl_idname = "gifstream.check_engine"
    bl_label = "Check Engine"

    def execute(self, context):
        try:
            python = engine_python(context)
            version = engine_client.run_engine(python, ["--version"]).strip()
            report = engine_client.doctor(python)
        except engine_client.EngineError as exc:
            return fail(self, exc)
        for problem in report.get("problems") or []:
            self.report({"WARNING"}, f"GIFStream: {problem}")
        self.report({"INFO"}, f"GIFStream: {version} at {python}; {engine_client.doctor_summary(report)}")
        return {"FINISHED"}


class GIFStreamPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

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
