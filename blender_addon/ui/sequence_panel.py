"""Sequence panel (3D view sidebar > GIFStream): decode progress and cancel, the active sequence's settings,
its cache status, Match Scene, Relocate, the compositing layer and the farm bundle."""

import bpy

from ..core import frame_checks
from ..core.sequence_files import SequenceError
from ..scene import colour, farm_bundle, paths, sequence_scene
from . import compositing_layer, import_sequence
from .common import POLL_SECONDS, ChooseFolder, SidebarPanel, fail, start_timer

SETTINGS_SHOWN = ("Start Frame", "Stream FPS", "Scene FPS", "Pixel Angle", "Pixel Filter", "Viewport Density", "Extent",
                  "Directory")


class _SequenceOperator:
    """An operator on the active object's sequence modifier (unavailable without one): `apply` changes it."""

    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return sequence_scene.sequence_modifier(context.active_object) is not None

    def execute(self, context):
        try:
            self.apply(context, sequence_scene.sequence_modifier(context.active_object))
        except SequenceError as exc:
            return fail(self, exc)
        context.active_object.update_tag()
        return {"FINISHED"}


class GIFSTREAM_OT_relocate_sequence(_SequenceOperator, ChooseFolder, bpy.types.Operator):
    """Point the active sequence at another cache folder (e.g. after the .blend or the cache moved)"""

    bl_idname = "gifstream.relocate_sequence"
    bl_label = "Relocate Cache"

    def apply(self, context, modifier):
        sequence_scene.relocate(modifier, paths.absolute(self.directory))


class GIFSTREAM_OT_match_scene(_SequenceOperator, bpy.types.Operator):
    """Take the scene's frame rate and its camera's pixel size into the active sequence"""

    bl_idname = "gifstream.match_scene"
    bl_label = "Match Scene"

    def apply(self, context, modifier):
        sequence_scene.match_scene(modifier, context.scene)


class GIFSTREAM_OT_show_as_captured(bpy.types.Operator):
    """Set the scene's colour management to show the capture as captured (Standard view, no look, exposure 0,
    gamma 1, sRGB display)"""

    bl_idname = "gifstream.show_as_captured"
    bl_label = "Show As Captured"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        changed = colour.show_as_captured(context.scene)
        self.report({"INFO"}, "GIFStream: colour management shows the capture as captured"
                              + (f" (was {', '.join(changed)})" if changed else ""))
        return {"FINISHED"}


class GIFSTREAM_OT_export_farm_bundle(ChooseFolder, bpy.types.Operator):
    """Write a folder (the .blend and its Gaussian caches, relative paths) that renders without the add-on"""

    bl_idname = "gifstream.export_farm_bundle"
    bl_label = "Export Render-farm Bundle"

    def execute(self, context):
        if not self.directory:
            return fail(self, "choose a folder for the bundle")
        try:
            report = farm_bundle.export_bundle(context.scene, bpy.path.abspath(self.directory))
        except (SequenceError, OSError) as exc:
            return fail(self, exc)
        self.report({"INFO"}, f"GIFStream: bundle {report.blend}: {report.sequences} sequence(s), {report.layers} "
                              f"compositing layer(s), {report.files} frame files, {report.bytes / 2**20:.1f} MiB")
        return {"FINISHED"}


def redraw_while_checking():
    """Timer: redraw the 3D views (where the Sequence panel is) until the background frame checks are done."""
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()
    return POLL_SECONDS if frame_checks.checking() else None


def _job_row(layout, job, cancel_idname: str) -> None:
    """A job's status line, with its Cancel button while it runs."""
    if job is not None:
        row = layout.row()
        row.label(text=job.status_line())
        if job.running:
            row.operator(cancel_idname, icon="CANCEL", text="")


class VIEW3D_PT_gifstream_sequence(SidebarPanel, bpy.types.Panel):
    bl_label = "Sequence"

    def draw(self, context):
        layout = self.layout
        layout.operator(import_sequence.IMPORT_SCENE_OT_gifstream_sequence.bl_idname, icon="IMPORT")
        _job_row(layout, import_sequence.current_decode(), import_sequence.GIFSTREAM_OT_decode_cancel.bl_idname)
        modifier = sequence_scene.sequence_modifier(context.active_object)
        if modifier is not None:
            altered = colour.altered(context.scene)
            if altered:  # one line: what alters the capture's colours, and the button that undoes it
                row = layout.row()
                row.label(text=f"Colours differ from the capture: {', '.join(altered)}", icon="ERROR")
                row.operator(GIFSTREAM_OT_show_as_captured.bl_idname, text="", icon="COLOR")
            ids = sequence_scene.input_ids(modifier.node_group)
            for name in SETTINGS_SHOWN:
                if name in ids:  # a tree built by an older add-on (a saved .blend) may lack newer settings
                    layout.prop(modifier, f'["{ids[name]}"]', text=name)
            try:
                unchecked = sequence_scene.check_cache(modifier, wait=False)
            except SequenceError as exc:
                layout.label(text=str(exc), icon="ERROR")
            else:
                if unchecked:
                    layout.label(text=f"Checking the cache: {unchecked} frames left", icon="TIME")
            if frame_checks.checking():  # the body checks run in the background: redraw until they are done
                start_timer(redraw_while_checking)
            row = layout.row()
            row.operator(GIFSTREAM_OT_match_scene.bl_idname, icon="SCENE_DATA")
            row.operator(GIFSTREAM_OT_relocate_sequence.bl_idname, icon="FILE_FOLDER")
        layout.operator(compositing_layer.GIFSTREAM_OT_render_compositing_layer.bl_idname, icon="NODE_COMPOSITING")
        _job_row(layout, compositing_layer.current_layer_job(), compositing_layer.GIFSTREAM_OT_layer_cancel.bl_idname)
        layout.operator(GIFSTREAM_OT_export_farm_bundle.bl_idname, icon="EXPORT")
