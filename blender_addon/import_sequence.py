"""File > Import > GIFStream sequence: a `.gifs` stream (decoded by the engine into a cache) or a folder of 3DGS PLYs."""

from __future__ import annotations

import os

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import engine_client, sequence_scene
from .decode_job import DecodeJob
from .job_operators import POLL_SECONDS, cancel_job, run_job
from .preferences import addon_preferences
from .sequence_files import SequenceError, check_sequence, find_pattern

DECODE = {"job": None, "settings": None}  # the one decode of this Blender session and what to build from it


def current_decode():
    return DECODE["job"]


def default_cache_dir(stream: str) -> str:
    """Next to the .blend when it is saved (so '//' paths travel with it), else next to the stream."""
    stem = os.path.splitext(os.path.basename(stream))[0]
    if bpy.data.filepath:
        return os.path.join(os.path.dirname(bpy.data.filepath), "gifstream_cache", stem)
    return os.path.join(os.path.dirname(os.path.abspath(stream)), f"{stem}_cache")


def build_from_folder(context, settings: sequence_scene.SequenceSettings, folder: str):
    """Check every frame's header, then build; nothing is created when a file is wrong."""
    pattern = find_pattern(folder)
    check_sequence(pattern)
    return sequence_scene.build_sequence(context, pattern, settings)


def finish_decode(context) -> str:
    """After the decode job ended: build the scene from its cache; returns the message for the artist."""
    job, settings = DECODE["job"], DECODE["settings"]
    if job.status != "finished":
        return job.status_line()
    try:
        build_from_folder(context, settings, job.cache_dir)
    except SequenceError as exc:
        job.status, job.message = "failed", str(exc)
        return job.status_line()
    return f"GIFStream: imported {settings.name}, {job.total} frames from {job.cache_dir}"


def poll_decode():
    """Timer (import time only, never while rendering): progress in the status bar, the scene built at the end."""
    job = current_decode()
    if job is None:
        return None
    running = job.poll()
    context = bpy.context
    for window in getattr(context.window_manager, "windows", []):
        try:
            window.workspace.status_text_set(job.status_line() if running else None)
        except (AttributeError, RuntimeError):
            pass
    if running:
        return POLL_SECONDS
    message = finish_decode(context)
    job.message = message if job.status == "finished" else job.message
    print(message)
    if job.status == "finished":
        bpy.ops.ed.undo_push(message="Import GIFStream sequence")
    return None


class IMPORT_SCENE_OT_gifstream_sequence(bpy.types.Operator, ImportHelper):
    """Import a GIFStream .gifs stream or a folder of per-frame 3DGS PLYs as Gaussian proxies on the timeline"""

    bl_idname = "import_scene.gifstream_sequence"
    bl_label = "Import GIFStream Sequence"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ""
    filter_glob: StringProperty(default="*.gifs;*.ply", options={"HIDDEN"})
    filepath: StringProperty(subtype="FILE_PATH", description="A .gifs file, a PLY folder or any PLY inside it")
    cache_dir: StringProperty(name="Cache", subtype="DIR_PATH", default="",
                              description="Where a .gifs is decoded (empty: gifstream_cache/ next to the .blend)")
    fps: FloatProperty(name="PLY Frame Rate", default=30.0, min=0.001, description="Frame rate of a PLY folder")
    start_frame: IntProperty(name="Start Frame", default=-1, description="Scene frame of the first frame (-1: scene start)")
    viewport_density: FloatProperty(name="Viewport Density", default=1.0, min=0.0, max=1.0, subtype="FACTOR",
                                    description="Fraction of Gaussians drawn in the viewport; renders draw all")

    def execute(self, context):
        path = os.path.abspath(bpy.path.abspath(self.filepath))
        start = context.scene.frame_start if self.start_frame < 0 else self.start_frame
        if not os.path.exists(path):
            self.report({"ERROR"}, f"GIFStream: {path} does not exist")
            return {"CANCELLED"}
        if path.lower().endswith(".gifs"):
            return self.import_stream(context, path, start)
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        name = os.path.basename(os.path.normpath(folder)) or "gaussians"
        settings = sequence_scene.SequenceSettings(name, folder, self.fps, start, self.viewport_density)
        try:
            build_from_folder(context, settings, folder)
        except SequenceError as exc:
            self.report({"ERROR"}, f"GIFStream: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"GIFStream: imported {name} from {folder}")
        return {"FINISHED"}

    def import_stream(self, context, path, start):
        job = current_decode()
        if job is not None and job.status == "running":
            self.report({"ERROR"}, "GIFStream: a decode is already running; cancel it first")
            return {"CANCELLED"}
        try:
            python = engine_client.find_engine_python(addon_preferences(context).engine_python)
            header = engine_client.stream_info(python, path)  # a corrupt stream stops here, before anything is built
        except engine_client.EngineError as exc:
            self.report({"ERROR"}, f"GIFStream: {exc}")
            return {"CANCELLED"}
        name = os.path.splitext(os.path.basename(path))[0]
        cache = os.path.abspath(bpy.path.abspath(self.cache_dir)) if self.cache_dir else default_cache_dir(path)
        DECODE["settings"] = sequence_scene.SequenceSettings(name, path, float(header["fps"]), start, self.viewport_density)
        DECODE["job"] = job = DecodeJob(python, path, cache, int(header["num_frames"]))
        return run_job(self, job, lambda: finish_decode(context), poll_decode,
                       f"GIFStream: decoding {header['num_frames']} frames into {cache}")


class GIFSTREAM_OT_decode_cancel(bpy.types.Operator):
    """Stop decoding the stream; its partial cache is removed"""

    bl_idname = "gifstream.decode_cancel"
    bl_label = "Cancel Decode"

    def execute(self, context):
        return cancel_job(self, current_decode(), "GIFStream: no decode is running")


def menu_import(self, context):
    self.layout.operator(IMPORT_SCENE_OT_gifstream_sequence.bl_idname, text="GIFStream sequence (.gifs, PLY folder)")
