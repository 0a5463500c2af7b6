"""File > Import > GIFStream sequence: a `.gifs` stream (decoded by the engine into a cache) or a folder of 3DGS PLYs.

The decode runs as core.decode_job; scene.sequence_scene builds the sequence from its cache."""

from __future__ import annotations

import os

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty

from ..core import engine_client
from ..core.decode_job import DecodeJob
from ..core.sequence_files import SequenceError
from ..scene import colour, paths, sequence_scene
from .common import ImportFile, cancel_job, fail, follow_job, is_running, run_job
from .import_capture import AS_CAPTURED
from .preferences import apply_playback_memory, engine_python

DECODE = {"job": None, "settings": None}  # the one decode of this Blender session and what to build from it


def current_decode():
    return DECODE["job"]


def finish_decode(context) -> str:
    """After the decode job ended: build the scene from its cache; returns the message for the artist."""
    return sequence_scene.build_decoded(context, DECODE["job"], DECODE["settings"])


def poll_decode():
    """Timer: the decode's progress in the status bar, the scene built at the end."""
    job = current_decode()
    if job is None:
        return None
    return follow_job(job, lambda: finish_decode(bpy.context), "Import GIFStream sequence")


class IMPORT_SCENE_OT_gifstream_sequence(ImportFile, bpy.types.Operator):
    """Import a GIFStream .gifs stream or a folder of per-frame 3DGS PLYs as Gaussian proxies on the timeline"""

    bl_idname = "import_scene.gifstream_sequence"
    bl_label = "Import GIFStream Sequence"
    filter_glob: StringProperty(default="*.gifs;*.ply", options={"HIDDEN"})
    filepath: StringProperty(subtype="FILE_PATH", description="A .gifs file, a PLY folder or any PLY inside it")
    cache_dir: StringProperty(name="Cache", subtype="DIR_PATH", default="",
                              description="Where a .gifs is decoded (empty: gifstream_cache/ next to the .blend)")
    fps: FloatProperty(name="PLY Frame Rate", default=30.0, min=0.001, description="Frame rate of a PLY folder")
    start_frame: IntProperty(name="Start Frame", default=-1, description="Scene frame of the first frame (-1: scene start)")
    viewport_density: FloatProperty(name="Viewport Density", default=1.0, min=0.0, max=1.0, subtype="FACTOR",
                                    description="Fraction of Gaussians drawn in the viewport; renders draw all")
    show_as_captured: BoolProperty(name="Show As Captured", default=True, description=AS_CAPTURED)

    def execute(self, context):
        path = paths.absolute(self.filepath)
        start = context.scene.frame_start if self.start_frame < 0 else self.start_frame
        if not os.path.exists(path):
            return fail(self, f"{path} does not exist")
        apply_playback_memory(context)
        if path.lower().endswith(".gifs"):
            return self.import_stream(context, path, start)
        try:
            settings = sequence_scene.import_folder(context, path, self.fps, start, self.viewport_density)
        except SequenceError as exc:
            return fail(self, exc)
        changed = colour.show_as_captured(context.scene) if self.show_as_captured else []
        self.report({"INFO"}, f"GIFStream: imported {settings.name} from {settings.source}{colour.report(changed)}")
        return {"FINISHED"}

    def import_stream(self, context, path, start):
        if is_running(current_decode()):
            return fail(self, "a decode is already running; cancel it first")
        try:
            python = engine_python(context)
            header = engine_client.stream_info(python, path)  # a corrupt stream stops here, before anything is built
        except engine_client.EngineError as exc:
            return fail(self, exc)
        name = os.path.splitext(os.path.basename(path))[0]
        cache = paths.absolute(self.cache_dir) if self.cache_dir else sequence_scene.default_cache_dir(path)
        DECODE["settings"] = sequence_scene.SequenceSettings(name, path, float(header["fps"]), start, self.viewport_density)
        DECODE["job"] = job = DecodeJob(python, path, cache, int(header["num_frames"]))
        changed = colour.show_as_captured(context.scene) if self.show_as_captured else []  # in this undo step
        return run_job(self, job, lambda: finish_decode(context), poll_decode,
                       f"GIFStream: decoding {header['num_frames']} frames into {cache}{colour.report(changed)}")


class GIFSTREAM_OT_decode_cancel(bpy.types.Operator):
    """Stop decoding the stream; its partial cache is removed"""

    bl_idname = "gifstream.decode_cancel"
    bl_label = "Cancel Decode"

    def execute(self, context):
        return cancel_job(self, current_decode(), "GIFStream: no decode is running")


def menu_import(self, context):
    self.layout.operator(IMPORT_SCENE_OT_gifstream_sequence.bl_idname, text="GIFStream sequence (.gifs, PLY folder)")
