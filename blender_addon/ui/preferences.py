"""Add-on preferences: the engine's Python interpreter and a check button; the allocator setting for playback."""

import bpy

from ..core import engine_client, playback_memory
from ..scene import paths, sequence_scene
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


def keep_freed_memory(context=None) -> bool:
    """The preference; its default while the add-on's preferences do not exist yet (its first registration)."""
    try:
        return addon_preferences(context or bpy.context).keep_freed_memory
    except (KeyError, AttributeError):
        return GIFStreamPreferences.DEFAULT_KEEP_FREED_MEMORY


def apply_playback_memory(context=None) -> None:
    """Before proxies play (a sequence imported, or a file with one opened): the allocator for playback when the
    preference is on. The allocator is left as it is while no proxy exists, and when the preference is off."""
    if keep_freed_memory(context):
        playback_memory.apply()


def _has_proxies() -> bool:
    try:
        objects = bpy.data.objects
    except AttributeError:  # bpy.data is restricted while add-ons register at start-up (no file loaded yet)
        return False
    return any(sequence_scene.sequence_modifier(obj) is not None for obj in objects)


@bpy.app.handlers.persistent
def playback_memory_for_file(*_args) -> None:
    """load_post handler (and at registration): a file with proxies plays with the allocator set for playback."""
    if _has_proxies():
        apply_playback_memory()


def _keep_freed_memory_changed(self, context):
    playback_memory_for_file()  # turned on with proxies present: now; turned off: at the next start


class GIFStreamPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    engine_python: bpy.props.StringProperty(
        name="Engine Python",
        description="Python interpreter that can import gifstream_engine (empty: $GIFSTREAM_ENGINE_PYTHON, then search)",
        subtype="FILE_PATH",
        default="",
    )
    DEFAULT_KEEP_FREED_MEMORY = True
    keep_freed_memory: bpy.props.BoolProperty(
        name="Reuse Memory During Playback",
        description="Once a sequence is imported or opened, let Blender's memory allocator keep the arrays a proxy's "
        "frame change frees and reuse them for the next frame (Linux): new frames cost about a third less, and "
        "Blender keeps up to 512 MB of freed memory. Turning it off takes effect when Blender starts again",
        default=DEFAULT_KEEP_FREED_MEMORY,
        update=_keep_freed_memory_changed,
    )

    def draw(self, context):
        row = self.layout.row()
        row.prop(self, "engine_python")
        row.operator(GIFSTREAM_OT_check_engine.bl_idname)
        row = self.layout.row()
        row.prop(self, "keep_freed_memory")
        if not playback_memory.available():
            row.label(text="Linux (glibc) only: no effect here")
