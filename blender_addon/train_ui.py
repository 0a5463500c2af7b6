"""Train panel (3D view sidebar), its settings, Start/Cancel/Log operators and the progress timer."""

import bpy

from . import engine_client
from .job_operators import POLL_SECONDS
from .preferences import addon_preferences
from .training import TrainingJob

JOB = {"current": None}  # the one training job of this Blender session


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


def _set_status_bar(text):
    for window in getattr(bpy.context.window_manager, "windows", []):
        try:
            window.workspace.status_text_set(text)
        except (AttributeError, RuntimeError):
            pass


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
    _set_status_bar(job.status_line() if running else None)
    if not running:
        text = bpy.data.texts.get("GIFStream log") or bpy.data.texts.new("GIFStream log")
        text.from_string("\n".join(job.log))
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
        job = current_job()
        if job is not None and job.status == "running":
            self.report({"ERROR"}, "GIFStream: a training is already running; cancel it first")
            return {"CANCELLED"}
        if not s.capture_path or not s.output_dir:
            self.report({"ERROR"}, "GIFStream: set the capture folder and the output folder")
            return {"CANCELLED"}
        try:
            python = engine_client.find_engine_python(addon_preferences(context).engine_python)
        except engine_client.EngineError as exc:
            self.report({"ERROR"}, f"GIFStream: {exc}")
            return {"CANCELLED"}
        JOB["current"] = TrainingJob(python, bpy.path.abspath(s.capture_path), bpy.path.abspath(s.output_dir),
                                     s.preset, s.device, s.steps, s.extra_args, s.resume)
        s.status = "GIFStream: starting"
        if not bpy.app.timers.is_registered(poll_training):
            bpy.app.timers.register(poll_training, first_interval=POLL_SECONDS)
        self.report({"INFO"}, "GIFStream: training started")
        return {"FINISHED"}


class GIFSTREAM_OT_train_cancel(bpy.types.Operator):
    """Stop training: the engine saves a checkpoint and exits"""

    bl_idname = "gifstream.train_cancel"
    bl_label = "Cancel Training"

    def execute(self, context):
        job = current_job()
        if job is None or job.status != "running":
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
        text = bpy.data.texts.get("GIFStream log") or bpy.data.texts.new("GIFStream log")
        text.from_string("\n".join(job.log) if job else "no training has run in this session")
        for area in context.screen.areas if context.screen else []:
            if area.type == "TEXT_EDITOR":
                area.spaces.active.text = text
        return {"FINISHED"}


class VIEW3D_PT_gifstream_train(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "GIFStream"
    bl_label = "Train"

    def draw(self, context):
        s = context.scene.gifstream_train
        layout = self.layout
        for name in ("capture_path", "preset", "output_dir", "device", "steps", "extra_args", "resume"):
            layout.prop(s, name)
        job = current_job()
        row = layout.row()
        running = job is not None and job.status == "running"
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


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.gifstream_train = bpy.props.PointerProperty(type=GIFStreamTrainSettings)


def unregister():
    job = current_job()
    if job is not None and job.status == "running":
        job.cancel()  # never leave an orphan engine process
    if bpy.app.timers.is_registered(poll_training):
        bpy.app.timers.unregister(poll_training)
    del bpy.types.Scene.gifstream_train
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
