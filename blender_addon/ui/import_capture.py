"""File > Import > Multi-view capture: the engine's rig as Blender cameras with their footage (scene.rig builds it)."""

import bpy
from bpy.props import BoolProperty, StringProperty

from ..core import engine_client
from ..scene import colour, rig
from .common import ImportFile, fail
from .preferences import engine_python

AS_CAPTURED = ("Set the scene's colour management to show footage and Gaussians as captured (Standard view, no look, "
               "exposure 0, gamma 1, sRGB display); off: keep the scene's (e.g. AgX for the CG's look)")


class IMPORT_SCENE_OT_gifstream_capture(ImportFile, bpy.types.Operator):
    """Import a multi-view capture (N3DV/LLFF, Panoptic, COLMAP, transforms.json) as a camera rig"""

    bl_idname = "import_scene.gifstream_capture"
    bl_label = "Import Multi-view Capture"
    filter_glob: StringProperty(default="*.npy;*.json;*.bin;*.txt", options={"HIDDEN"})
    filepath: StringProperty(subtype="FILE_PATH")
    show_as_captured: BoolProperty(name="Show As Captured", default=True, description=AS_CAPTURED)

    def execute(self, context):
        try:
            _, cameras, info = rig.import_capture(context, engine_python(context), bpy.path.abspath(self.filepath))
        except engine_client.EngineError as exc:
            return fail(self, exc)
        changed = colour.show_as_captured(context.scene) if self.show_as_captured else []
        self.report({"INFO"}, f"GIFStream: imported {len(cameras)} cameras, {info['num_frames']} frames at "
                              f"{info['fps']:g} fps{colour.report(changed)}")
        return {"FINISHED"}


def menu_import(self, context):
    self.layout.operator(IMPORT_SCENE_OT_gifstream_capture.bl_idname, text="Multi-view capture (GIFStream)")
