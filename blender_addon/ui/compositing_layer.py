"""Render Compositing Layer and its Cancel: the engine renders the layer (core.layer_job), scene.compositing
exports the cameras and wires the compositor to the result."""

from __future__ import annotations

import os

import bpy

from ..core import engine_client
from ..scene import compositing, sequence_scene
from .common import cancel_job, fail, follow_job, is_running, run_job
from .preferences import engine_python

LAYER = {"job": None, "scene": None, "object": None, "hide_proxy": True}  # the one layer render of this session


def current_layer_job():
    return LAYER["job"]


def finish_layer() -> str:
    """After the job ended: wire the compositor, hide the proxy from the camera; the message for the artist."""
    return compositing.finish_layer(LAYER["job"], LAYER["scene"], LAYER["object"], LAYER["hide_proxy"])


def poll_layer():
    """Timer while the engine renders (never while Blender renders): progress, then the compositor wired."""
    job = current_layer_job()
    if job is None:
        return None
    return follow_job(job, finish_layer, "GIFStream compositing layer")


class GIFSTREAM_OT_render_compositing_layer(bpy.types.Operator):
    """Have the engine rasterise the sequence from the scene camera over the frame range (multilayer EXR, RGBA + Z)
    and composite it with the render by depth"""

    bl_idname = "gifstream.render_compositing_layer"
    bl_label = "Render Compositing Layer"
    bl_options = {"REGISTER"}

    directory: bpy.props.StringProperty(name="Folder", subtype="DIR_PATH", default="",
                                        description="Where the EXRs go (empty: gifstream_layer/NAME/ next to the .blend)")
    hide_proxy: bpy.props.BoolProperty(name="Hide Proxy from Camera", default=True,
                                       description="The layer replaces the proxy in the camera's view; reflections keep it")

    @classmethod
    def poll(cls, context):
        return sequence_scene.sequence_object(context) is not None

    def execute(self, context):
        if is_running(current_layer_job()):
            return fail(self, "a compositing layer is already rendering; cancel it first")
        scene, obj = context.scene, sequence_scene.sequence_object(context)
        try:
            job = compositing.start_layer(engine_python(context), scene, obj, self.directory)
        except (engine_client.EngineError, compositing.LayerSetupError, ValueError, OSError) as exc:
            return fail(self, exc)
        LAYER.update(job=job, scene=scene.name, object=obj.name, hide_proxy=self.hide_proxy)
        return run_job(self, job, finish_layer, poll_layer,
                       f"GIFStream: rendering the compositing layer of {obj.name}, {job.total} frames, "
                       f"from {os.path.basename(job.sequence)}")


class GIFSTREAM_OT_layer_cancel(bpy.types.Operator):
    """Stop rendering the compositing layer; the previous layer (if any) stays"""

    bl_idname = "gifstream.layer_cancel"
    bl_label = "Cancel Compositing Layer"

    def execute(self, context):
        return cancel_job(self, current_layer_job(), "GIFStream: no compositing layer is rendering")
