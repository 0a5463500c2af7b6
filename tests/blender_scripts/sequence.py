"""Runs in a Python with bpy. argv: SPEC_JSON OUT_JSON. What it does is in the spec:

- "zip": install this add-on build first (absent: a fresh process with no add-on, e.g. the farm check)
- "open": a .blend to open with scripts disabled (as a render farm does)
- "imports": [{"filepath", ...operator options}] for bpy.ops.import_scene.gifstream_sequence, one after another
- "camera": {"K", "w2c", "width", "height"} (OpenCV, as the engine's cameras) for the scene camera
- "probe": scene frames at which to report the evaluated proxy (vertex count, centroid of the red quads)
- "panel": the Sequence panel's lines, drawn before and after the background frame checks finished
- "renders": [{"frame", "engine": CYCLES|BLENDER_EEVEE, "path"}] still renders; "animation": {"engine", "path"}
- "save": save the .blend here; "bundle": export a farm bundle into this folder
"""

import json
import os
import sys

import bpy
import numpy as np
from bpy_helpers import call, set_camera

spec_path, out_json = sys.argv[-2:]
with open(spec_path) as f:
    spec = json.load(f)
result = {}
ADDON = "bl_ext.user_default.gifstream_blender"


def datablock_counts():
    return {kind: len(getattr(bpy.data, kind)) for kind in ("objects", "meshes", "collections", "node_groups", "materials")}


def proxy_objects():
    return [o for o in bpy.data.objects if "GIFStream" in o.modifiers]


def probe(obj, frame):
    scene = bpy.context.scene
    scene.frame_set(frame)
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    n = len(mesh.vertices)
    out = {"frame": frame, "vertices": n, "faces": len(mesh.polygons)}
    if n:
        co = np.zeros(n * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
        f_dc_0 = np.zeros(n, np.float32)  # red above 0.5: f_dc_0 above 0 (colour = 0.5 + SH_C0 * f_dc)
        mesh.attributes["f_dc_0"].data.foreach_get("value", f_dc_0)
        red = f_dc_0 > 0
        out["red_centroid"] = co.reshape(-1, 3)[red].mean(0).tolist() if red.any() else None
        out["attributes"] = sorted(a.name for a in mesh.attributes if not a.name.startswith("."))
    evaluated.to_mesh_clear()
    return out


def setup_render(engine):
    scene = bpy.context.scene
    scene.render.engine = engine
    scene.view_settings.view_transform = "Standard"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.film_transparent = False
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.color = (0, 0, 0)
    if world.node_tree is not None:
        world.node_tree.nodes["Background"].inputs["Color"].default_value = (0, 0, 0, 1)
    if engine == "CYCLES":
        scene.cycles.device = "CPU"
        scene.cycles.samples = spec.get("samples", 16)
        scene.cycles.use_denoising = False
        scene.cycles.seed = 0
        scene.cycles.pixel_filter_type = "BOX"
    else:
        scene.eevee.taa_render_samples = spec.get("eevee_samples", 16)


if "zip" in spec:
    bpy.ops.extensions.package_install_files(filepath=spec["zip"], repo="user_default", enable_on_install=True)
if "open" in spec:
    bpy.ops.wm.open_mainfile(filepath=spec["open"], load_ui=False, use_scripts=False)
result["addon_enabled"] = ADDON in bpy.context.preferences.addons
if spec.get("clear", False):
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
if "scene_fps" in spec:
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = spec["scene_fps"], 1.0
if "camera" in spec:
    set_camera(spec["camera"], "probe camera")
result["imports"] = []
for options in spec.get("imports", []):
    before = datablock_counts()
    status, error = call(bpy.ops.import_scene.gifstream_sequence, **options)
    created = {k: v - before[k] for k, v in datablock_counts().items()}
    result["imports"].append({"status": status, "error": error, "created": created})
objects = proxy_objects()
result["proxies"] = [o.name for o in objects]
if objects:
    obj = objects[0]
    result["parent_type"] = obj.parent.type if obj.parent else None
    result["collection_objects"] = sorted(o.name for o in obj.users_collection[0].objects)
    result["frame_range"] = [bpy.context.scene.frame_start, bpy.context.scene.frame_end]
    result["transparent_bounces"] = bpy.context.scene.cycles.transparent_max_bounces
    result["material_render_method"] = obj.data.materials[0].surface_render_method if obj.data.materials else None
    result["probes"] = [probe(obj, f) for f in spec.get("probe", [])]
    if spec.get("panel"):
        from importlib import import_module
        from types import SimpleNamespace

        panel, checks = import_module(f"{ADDON}.ui.sequence_panel"), import_module(f"{ADDON}.core.frame_checks")

        class Layout:
            """Records the panel's labels."""

            def __init__(self):
                self.labels = []

            def label(self, text="", icon="NONE"):
                self.labels.append(text)

            def row(self):
                return self

            def operator(self, *args, **kwargs):
                return None

            def prop(self, *args, **kwargs):
                return None

        def draw():
            layout = Layout()
            panel.VIEW3D_PT_gifstream_sequence.draw(SimpleNamespace(layout=layout), bpy.context)
            return layout.labels

        bpy.context.view_layer.objects.active = obj
        result["panel"] = [draw()]
        checks.wait_for_background_checks()
        result["panel"].append(draw())
    if spec.get("cache_check"):
        from importlib import import_module

        sequence_scene = import_module(f"{ADDON}.scene.sequence_scene")
        try:
            sequence_scene.check_cache(obj.modifiers["GIFStream"])
            result["cache_error"] = ""
        except ValueError as exc:
            result["cache_error"] = str(exc)
result["handlers"] = {name: len(getattr(bpy.app.handlers, name)) for name in ("frame_change_pre", "frame_change_post",
                                                                              "render_pre", "depsgraph_update_post")}
for render in spec.get("renders", []):
    setup_render(render["engine"])
    bpy.context.scene.frame_set(render["frame"])
    bpy.context.scene.render.filepath = render["path"]
    bpy.ops.render.render(write_still=True)
if "animation" in spec:
    anim = spec["animation"]
    setup_render(anim["engine"])
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = anim["frames"]
    scene.render.filepath = anim["path"]
    bpy.ops.render.render(animation=True)
if "save" in spec:
    os.makedirs(os.path.dirname(spec["save"]), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=spec["save"])
if "bundle" in spec:
    result["bundle_status"], result["bundle_error"] = call(bpy.ops.gifstream.export_farm_bundle, directory=spec["bundle"])
with open(out_json, "w") as f:
    json.dump(result, f)
