"""Sequence panel (3D view sidebar > GIFStream): decode progress and cancel, the active sequence's settings,
its cache status, Relocate and the farm bundle."""

import os

import bpy

from . import compositing_layer, farm_bundle, import_sequence, sequence_scene
from .sequence_files import SequenceError, check_sequence, find_pattern

SETTINGS_SHOWN = ("Start Frame", "Stream FPS", "Scene FPS", "Pixel Angle", "Viewport Density", "Extent", "Directory")


class GIFSTREAM_OT_relocate_sequence(bpy.types.Operator):
    """Point the active sequence at another cache folder (e.g. after the .blend or the cache moved)"""

    bl_idname = "gifstream.relocate_sequence"
    bl_label = "Relocate Cache"
    bl_options = {"REGISTER", "UNDO"}

    directory: bpy.props.StringProperty(subtype="DIR_PATH")

    @classmethod
    def poll(cls, context):
        return sequence_scene.sequence_modifier(context.active_object) is not None

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        modifier = sequence_scene.sequence_modifier(context.active_object)
        folder = os.path.abspath(bpy.path.abspath(self.directory))
        try:
            pattern = find_pattern(folder)
            check_sequence(pattern)
        except SequenceError as exc:
            self.report({"ERROR"}, f"GIFStream: {exc}")
            return {"CANCELLED"}
        sequence_scene.set_inputs(modifier, {"Directory": sequence_scene.blender_dir(folder), "Prefix": pattern.prefix,
                                             "Digits": pattern.digits, "First Number": pattern.first,
                                             "Suffix": pattern.suffix, "Frames": pattern.count})
        context.active_object.update_tag()
        return {"FINISHED"}


class GIFSTREAM_OT_match_scene(bpy.types.Operator):
    """Take the scene's frame rate and its camera's pixel size into the active sequence"""

    bl_idname = "gifstream.match_scene"
    bl_label = "Match Scene"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return sequence_scene.sequence_modifier(context.active_object) is not None

    def execute(self, context):
        sequence_scene.match_scene(sequence_scene.sequence_modifier(context.active_object), context.scene)
        context.active_object.update_tag()
        return {"FINISHED"}


class VIEW3D_PT_gifstream_sequence(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "GIFStream"
    bl_label = "Sequence"

    def draw(self, context):
        layout = self.layout
        layout.operator(import_sequence.IMPORT_SCENE_OT_gifstream_sequence.bl_idname, icon="IMPORT")
        job = import_sequence.current_decode()
        if job is not None:
            row = layout.row()
            row.label(text=job.status_line())
            if job.status == "running":
                row.operator(import_sequence.GIFSTREAM_OT_decode_cancel.bl_idname, icon="CANCEL", text="")
        modifier = sequence_scene.sequence_modifier(context.active_object)
        if modifier is not None:
            ids = sequence_scene.input_ids(modifier.node_group)
            for name in SETTINGS_SHOWN:
                layout.prop(modifier, f'["{ids[name]}"]', text=name)
            try:
                sequence_scene.check_cache(modifier)
            except SequenceError as exc:
                layout.label(text=str(exc), icon="ERROR")
            row = layout.row()
            row.operator(GIFSTREAM_OT_match_scene.bl_idname, icon="SCENE_DATA")
            row.operator(GIFSTREAM_OT_relocate_sequence.bl_idname, icon="FILE_FOLDER")
        layout.operator(compositing_layer.GIFSTREAM_OT_render_compositing_layer.bl_idname, icon="NODE_COMPOSITING")
        layer = compositing_layer.current_layer_job()
        if layer is not None:
            row = layout.row()
            row.label(text=layer.status_line())
            if layer.status == "running":
                row.operator(compositing_layer.GIFSTREAM_OT_layer_cancel.bl_idname, icon="CANCEL", text="")
        layout.operator(farm_bundle.GIFSTREAM_OT_export_farm_bundle.bl_idname, icon="EXPORT")


CLASSES = (import_sequence.IMPORT_SCENE_OT_gifstream_sequence, import_sequence.GIFSTREAM_OT_decode_cancel,
           GIFSTREAM_OT_relocate_sequence, GIFSTREAM_OT_match_scene, compositing_layer.GIFSTREAM_OT_render_compositing_layer,
           compositing_layer.GIFSTREAM_OT_layer_cancel, farm_bundle.GIFSTREAM_OT_export_farm_bundle,
           VIEW3D_PT_gifstream_sequence)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_import.append(import_sequence.menu_import)


def unregister():
    job = import_sequence.current_decode()
    if job is not None and job.status == "running":
        job.cancel()
    layer = compositing_layer.current_layer_job()
    if layer is not None and layer.status == "running":
        layer.cancel()
    for timer in (import_sequence.poll_decode, compositing_layer.poll_layer):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    bpy.types.TOPBAR_MT_file_import.remove(import_sequence.menu_import)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
