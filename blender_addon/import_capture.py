"""File > Import > Multi-view capture: the engine's rig as Blender cameras with their footage."""

import os

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ImportHelper

from . import engine_client, rig
from .preferences import addon_preferences


def build_rig(context, info: dict, name: str):
    """Create a collection of cameras for the rig description `info` and set up the scene from it."""
    scene = context.scene
    collection = bpy.data.collections.new(name)
    scene.collection.children.link(collection)
    first = info["cameras"][0]
    scene.render.resolution_x, scene.render.resolution_y = first["width"], first["height"]
    scene.render.resolution_percentage = 100
    fps = float(info["fps"])
    scene.render.fps = max(1, round(fps))
    scene.render.fps_base = scene.render.fps / fps
    scene.frame_start, scene.frame_end = 1, int(info["num_frames"])
    cameras = []
    for cam in info["cameras"]:
        data = bpy.data.cameras.new(cam["name"])
        rig.apply_intrinsics(data, cam["K"], cam["width"], cam["height"])
        data.clip_start, data.clip_end = 0.01, 1000.0
        obj = bpy.data.objects.new(cam["name"], data)
        obj.matrix_world = rig.camera_matrix_world(cam["w2c"])
        obj["gifstream_split"] = cam["split"]
        obj["gifstream_size"] = (cam["width"], cam["height"])
        collection.objects.link(obj)
        clip = rig.attach_footage(data, cam.get("footage"))
        if clip is not None:
            clip.frame_start = 1
        cameras.append(obj)
    collection["gifstream_capture"] = info.get("root", "")
    collection["gifstream_format"] = info["format"]
    scene.camera = next((c for c in cameras if c["gifstream_split"] == "test"), cameras[0])
    return collection, cameras


class IMPORT_SCENE_OT_gifstream_capture(bpy.types.Operator, ImportHelper):
    """Import a multi-view capture (N3DV/LLFF, Panoptic, COLMAP, transforms.json) as a camera rig"""

    bl_idname = "import_scene.gifstream_capture"
    bl_label = "Import Multi-view Capture"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ""
    filter_glob: StringProperty(default="*.npy;*.json;*.bin;*.txt", options={"HIDDEN"})
    filepath: StringProperty(subtype="FILE_PATH")

    def execute(self, context):
        path = bpy.path.abspath(self.filepath)
        root = path if os.path.isdir(path) else os.path.dirname(path)
        # a file chosen inside sparse/0 means the capture root two levels up
        if os.path.basename(root) == "0" and os.path.basename(os.path.dirname(root)) == "sparse":
            root = os.path.dirname(os.path.dirname(root))
        try:
            python = engine_client.find_engine_python(addon_preferences(context).engine_python)
            info = engine_client.capture_info(python, root)
        except engine_client.EngineError as exc:
            self.report({"ERROR"}, f"GIFStream: {exc}")
            return {"CANCELLED"}
        collection, cameras = build_rig(context, info, os.path.basename(os.path.normpath(root)) or "capture")
        self.report({"INFO"}, f"GIFStream: imported {len(cameras)} cameras, {info['num_frames']} frames at {info['fps']:g} fps")
        return {"FINISHED"}


def menu_import(self, context):
    self.layout.operator(IMPORT_SCENE_OT_gifstream_capture.bl_idname, text="Multi-view capture (GIFStream)")
