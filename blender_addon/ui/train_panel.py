"""Train panel (3D view sidebar), its settings, Start/Cancel/Log operators and the progress timer (the training
itself: core.training)."""

import bpy

from ..core import engine_client
from ..core.training import TrainingJob
from .common import POLL_SECONDS, SidebarPanel, fail, is_running, set_status_bar, start_timer
from .preferences import engine_python

JOB = {"current": None}  # the one training job of this Blender session
LOG_TEXT = "GIFStream log"


class GIFStreamTrainSettings(bpy.types.PropertyGroup):
    capture_path: bpy.props.StringProperty(name="Capture", subtype="DIR_PATH", description="Capture folder")
    output_dir: bpy.props.StringProperty(name="Output", subtype="DIR_PATH", description="Run folder (checkpoints, model, eval)")
    preset: bpy.props.StringProperty(name="Preset", default="preview", description="Preset name or TOML path")
    device: bpy.props.EnumProperty(name="Device", items=[("auto", "Auto", ""), ("cuda", "CUDA", ""), ("cpu", "CPU", "")])
    steps: bpy.props.IntProperty(name="Steps", default=0, min=0, description="Training steps (0: the preset's)")
    extra_args: bpy.props.StringProperty(name="Extra", default="", description="More engine options, e.g. --set train.max_anchors=5000")
    resume: bpy.props.BoolProperty(name="Resume", default=False, description="Continue from the run's checkpoint")
    progress: bpy.props.FloatProperty(name="Progress", subtype="PERCENTAGE", min=0, max=100)
    status: bpy.props.StringProperty(name="Status", default="idle")


def current_job():
    return JOB["current"]


def log_text():
    """The text datablock 'GIFStream log' (open it in a Text Editor)."""
    return bpy.data.texts.get(LOG_TEXT) or bpy.data.texts.new(LOG_TEXT)


def poll_training():
    """Timer: apply the engine's events to the settings and the status bar; stops when the job ends."""
    job = current_job()
    if job is None:
        return None
    running = job.poll()
    for scene in bpy.data.scenes:
        settings = scene.gifstream_train
        settings.status = job.status_line()
        settings.progress = 100.0 * job.step / job.total if job.total else 0.0
    set_status_bar(job.status_line() if running else None)
    if not running:
        log_text().from_string("\n".join(job.log))
        if job.status == "failed":
            print(f"GIFStream training failed: {job.message}")
        return None
    return POLL_SECONDS


class GIFSTREAM_OT_train_start(bpy.types.Operator):
    """Start training in the engine (its own process)"""

    bl_idname = "gifstream.train_start"
    bl_label = "Start Training"

    def execute(self, context):
        s = context.scene.gifstream_train
        if is_running(current_job()):
            return fail(self, "a training is already running; cancel it first")
        if not s.capture_path or not s.output_dir:
            return fail(self, "set the capture folder and the output folder")
        try:
            python = engine_python(context)
        except engine_client.EngineError as exc:
            return fail(self, exc)
        JOB["current"] = TrainingJob(python, bpy.path.abspath(s.capture_path), bpy.path.abspath(s.output_dir),
                                     s.preset, s.device, s.steps, s.extra_args, s.resume)
        s.status = "GIFStream: starting"
        start_timer(poll_training)
        self.report({"INFO"}, "GIFStream: training started")
        return {"FINISHED"}


class GIFSTREAM_OT_train_cancel(bpy.types.Operator):
    """Stop training: the engine saves a checkpoint and exits"""

    bl_idname = "gifstream.train_cancel"
    bl_label = "Cancel Training"

    def execute(self, context):
        job = current_job()
        if not is_running(job):
            self.report({"WARNING"}, "GIFStream: no training is running")
            return {"CANCELLED"}
        job.cancel()
        poll_training()
        self.report({"INFO"}, f"GIFStream: {job.status} {job.message}")
        return {"FINISHED"}


class GIFSTREAM_OT_show_log(bpy.types.Operator):
    """Copy the engine's log into the text 'GIFStream log' (open it in a Text Editor)"""

    bl_idname = "gifstream.show_log"
    bl_label = "Show Log"

    def execute(self, context):
        job = current_job()
        text = log_text()
        text.from_string("\n".join(job.log) if job else "no training has run in this session")
        for area in context.screen.areas if context.screen else []:
            if area.type == "TEXT_EDITOR":
                area.spaces.active.text = text
        return {"FINISHED"}


class VIEW3D_PT_gifstream_train(SidebarPanel, bpy.types.Panel):
    bl_label = "Train"

    def draw(self, context):
        s = context.scene.gifstream_train
        layout = self.layout
        for name in ("capture_path", "preset", "output_dir", "device", "steps", "extra_args", "resume"):
            layout.prop(s, name)
        row = layout.row()
        running = is_running(current_job())
        row.enabled = not running
        row.operator(GIFSTREAM_OT_train_start.bl_idname, icon="PLAY")
        row = layout.row()
        row.enabled = running
        row.operator(GIFSTREAM_OT_train_cancel.bl_idname, icon="CANCEL")
        layout.prop(s, "progress", slider=True)
        layout.label(text=s.status)
        layout.operator(GIFSTREAM_OT_show_log.bl_idname, icon="TEXT")


CLASSES = (GIFStreamTrainSettings, GIFSTREAM_OT_train_start, GIFSTREAM_OT_train_cancel, GIFSTREAM_OT_show_log,
           VIEW3D_PT_gifstream_train)
SCENE_PROPERTIES = {"gifstream_train": GIFStreamTrainSettings}  # bpy.types.Scene.<name>: PointerProperty(type=...)
