"""Runs in a Python with bpy. argv: SPEC_JSON OUT_JSON. The compositing layer, as the spec says:

- "zip": install this add-on build (absent: a fresh process with no add-on, as a farm); "open": a .blend to open with
  scripts disabled
- "import": {"filepath", ...} a PLY folder for bpy.ops.import_scene.gifstream_sequence; "origin": {"location",
  "scale"} for the sequence's empty; "camera": {"K", "w2c", "width", "height"} (OpenCV) for the scene camera,
  "camera_keys": [{"frame", "offset"}] to animate its location;
  "frames": [start, end] of the scene
- "cubes": [{"name", "location", "size", "color"}] emissive CG cubes
- "default_compositor": start from a compositor with Render Layers linked to the Group Output
- "layer_errors": ["ortho", "uneven"]: the operator on a scene it cannot render (reported, then the scene restored)
- "layer": {...} options of bpy.ops.gifstream.render_compositing_layer
- "projection_check": [{"sensor_fit", "shift", "resolution", "pixel_aspect"}]: pixel error of the add-on's
  OpenCV camera (rig.camera_intrinsics, rig.camera_w2c) against Blender's own world_to_camera_view
- "save": save the .blend here before the layer; "renders": [{"frame", "path", "compositing": bool}] Cycles stills;
  "bundle": export a farm bundle into this folder
"""

import json
import os
import sys

import bpy
from bpy_helpers import call, set_camera
from mathutils import Vector

spec_path, out_json = sys.argv[-2:]
with open(spec_path) as f:
    spec = json.load(f)
result = {}


def emissive_cube(name, location, size, color):
    bpy.ops.mesh.primitive_cube_add(size=size, location=location)
    obj = bpy.context.active_object
    obj.name = name
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    nodes.clear()
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (*color, 1.0)
    out = nodes.new("ShaderNodeOutputMaterial")
    mat.node_tree.links.new(emission.outputs[0], out.inputs["Surface"])
    obj.data.materials.append(mat)


def setup_render():
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.view_settings.view_transform = "Standard"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.film_transparent = False
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.color = (0, 0, 0)
    if world.node_tree is not None:
        world.node_tree.nodes["Background"].inputs["Color"].default_value = (0, 0, 0, 1)
    scene.cycles.device = "CPU"
    scene.cycles.samples = spec.get("samples", 8)
    scene.cycles.use_denoising = False
    scene.cycles.seed = 0
    scene.cycles.pixel_filter_type = "BOX"


if "zip" in spec:
    bpy.ops.extensions.package_install_files(filepath=spec["zip"], repo="user_default", enable_on_install=True)
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
if "open" in spec:
    bpy.ops.wm.open_mainfile(filepath=spec["open"], load_ui=False, use_scripts=False)
scene = bpy.context.scene
result["addon_enabled"] = any(name.endswith("gifstream_blender") for name in bpy.context.preferences.addons.keys())
if "frames" in spec:
    scene.frame_start, scene.frame_end = spec["frames"]
    scene.render.fps, scene.render.fps_base = spec.get("scene_fps", 24), 1.0
if "camera" in spec:
    set_camera(spec["camera"], "shot camera")
    base = scene.camera.location.copy()
    for key in spec.get("camera_keys", []):  # an animated camera: [{"frame", "offset"}], location keyframes
        scene.camera.location = base + Vector(key["offset"])
        scene.camera.keyframe_insert("location", frame=key["frame"])
if "import" in spec:
    result["import"] = call(bpy.ops.import_scene.gifstream_sequence, **spec["import"])
    scene.frame_start, scene.frame_end = spec["frames"]  # the import may extend the range
proxy = next((o for o in bpy.data.objects if "GIFStream" in o.modifiers), None)
if proxy is not None and "origin" in spec:
    proxy.parent.location = spec["origin"]["location"]
    proxy.parent.scale = [spec["origin"]["scale"]] * 3
for cube in spec.get("cubes", []):
    emissive_cube(cube["name"], cube["location"], cube["size"], cube["color"])
def projection_error(case):
    """Largest pixel distance between the add-on's K / w2c projection and Blender's, for one camera setup."""
    from importlib import import_module

    import numpy as np
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Euler, Vector

    rig = import_module("bl_ext.user_default.gifstream_blender.scene.rig")
    data = bpy.data.cameras.new("check")
    cam = bpy.data.objects.new("check", data)
    scene.collection.objects.link(cam)
    data.lens, data.sensor_fit = 30.0, case["sensor_fit"]
    data.shift_x, data.shift_y = case["shift"]
    cam.location, cam.rotation_euler = (0.4, -6.0, 1.0), Euler((1.4, 0.1, 0.3))
    cam.scale = (1.7, 1.7, 1.7)  # the renderer ignores a camera's scale
    saved = (scene.render.resolution_x, scene.render.resolution_y, scene.render.pixel_aspect_x,
             scene.render.pixel_aspect_y, scene.camera)
    (w, h), (ax, ay) = case["resolution"], case["pixel_aspect"]
    scene.render.resolution_x, scene.render.resolution_y = w, h
    scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = ax, ay
    scene.camera = cam
    bpy.context.view_layer.update()
    K, w2c = np.array(rig.camera_intrinsics(data, w, h, ax, ay)), np.array(rig.camera_w2c(cam.matrix_world))
    error = 0.0
    for point in np.random.default_rng(1).normal(size=(20, 3)) * [2, 1, 1.5]:
        ndc = world_to_camera_view(scene, cam, Vector(point))
        p = w2c[:3, :3] @ point + w2c[:3, 3]
        uv = (K @ p)[:2] / p[2]
        error = max(error, float(np.hypot(uv[0] - ndc.x * w, uv[1] - (1 - ndc.y) * h)), abs(p[2] - ndc.z))
    scene.render.resolution_x, scene.render.resolution_y, scene.render.pixel_aspect_x, \
        scene.render.pixel_aspect_y, scene.camera = saved
    bpy.data.objects.remove(cam)
    return error


result["projection_errors"] = [projection_error(case) for case in spec.get("projection_check", [])]
if "save" in spec:  # saved first, as an artist would: the layer's paths are then relative to the .blend
    os.makedirs(os.path.dirname(spec["save"]), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=spec["save"])
if spec.get("default_compositor"):  # what "Use Nodes" makes: Render Layers straight to the output
    tree = bpy.data.node_groups.new("Compositor", "CompositorNodeTree")
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    rl, out = tree.nodes.new("CompositorNodeRLayers"), tree.nodes.new("NodeGroupOutput")
    tree.links.new(rl.outputs["Image"], out.inputs[0])
    scene.compositing_node_group = tree
result["layer_errors"] = []
for case in spec.get("layer_errors", []):  # "ortho": an orthographic scene camera; "uneven": the empty scaled unevenly
    bpy.context.view_layer.objects.active = proxy
    saved = (scene.camera.data.type, tuple(proxy.parent.scale))
    if case == "ortho":
        scene.camera.data.type = "ORTHO"
    else:
        proxy.parent.scale = (saved[1][0], 2 * saved[1][1], saved[1][2])
    status, error = call(bpy.ops.gifstream.render_compositing_layer)
    result["layer_errors"].append({"case": case, "status": status, "error": error,
                                   "images": sum("gifstream_layer" in i for i in bpy.data.images), "visible_camera": proxy.visible_camera})
    scene.camera.data.type, proxy.parent.scale = saved
if "layer" in spec:
    bpy.context.view_layer.objects.active = proxy
    result["layer"] = call(bpy.ops.gifstream.render_compositing_layer, **spec["layer"])
images = [i for i in bpy.data.images if "gifstream_layer" in i]
result["images"] = [{"name": i.name, "filepath": i.filepath, "source": i.source, "type": i.type} for i in images]
tree = getattr(scene, "compositing_node_group", None)
if tree is not None:
    node = tree.nodes.get("GIFStream Layer")
    result["image_node"] = None if node is None else {
        "outputs": [o.name for o in node.outputs], "frame_start": node.frame_start, "frame_offset": node.frame_offset,
        "frame_duration": node.frame_duration, "group_outputs": sum(n.bl_idname == "NodeGroupOutput" for n in tree.nodes),
        "render_layers": sum(n.bl_idname == "CompositorNodeRLayers" for n in tree.nodes), "linked": [link.from_socket.name + ">" + link.to_socket.name
                                                          for link in tree.links]}
result["proxy_visible_camera"] = None if proxy is None else proxy.visible_camera
result["use_pass_z"] = scene.view_layers[0].use_pass_z
for render in spec.get("renders", []):
    setup_render()
    scene.render.use_compositing = render.get("compositing", True)
    scene.frame_set(render["frame"])
    scene.render.filepath = render["path"]
    bpy.ops.render.render(write_still=True)
if "bundle" in spec:
    result["bundle"] = call(bpy.ops.gifstream.export_farm_bundle, directory=spec["bundle"])
with open(out_json, "w") as f:
    json.dump(result, f)
