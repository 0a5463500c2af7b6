"""Runs in a Python with bpy: install the built add-on zip, import a capture, report the rig as JSON.

argv: ZIP CAPTURE OUT_JSON [SCENE_BLEND RENDER_PNG]
With a scene .blend, its objects are appended and the imported test camera renders frame 1 to RENDER_PNG.
"""

import json
import sys

import bpy
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

zip_path, capture, out_json = sys.argv[1:4]
result = {}
bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
result["enabled"] = any("gifstream" in name for name in bpy.context.preferences.addons.keys())
for obj in list(bpy.data.objects):  # Blender's startup scene (cube, light, camera) is not part of the capture
    bpy.data.objects.remove(obj)
result["colour"] = {"before": bpy.context.scene.view_settings.view_transform}  # a new scene's default (AgX)
try:
    result["status"] = sorted(bpy.ops.import_scene.gifstream_capture(filepath=capture))
except RuntimeError as exc:  # an operator that reports an ERROR raises here when called from Python
    result["status"], result["error"] = ["CANCELLED"], str(exc)
view = bpy.context.scene.view_settings
result["colour"]["after_import"] = [view.view_transform, view.look, view.exposure, view.gamma,
                                    bpy.context.scene.display_settings.display_device]
try:  # the engine's version and environment report (gifstream doctor)
    result["check_engine"] = sorted(bpy.ops.gifstream.check_engine())
except RuntimeError as exc:
    result["check_engine"] = ["CANCELLED", str(exc)]
scene = bpy.context.scene
result["scene"] = {"fps": scene.render.fps / scene.render.fps_base, "frame_start": scene.frame_start,
                   "frame_end": scene.frame_end, "resolution": [scene.render.resolution_x, scene.render.resolution_y]}
probe = [(0.3, 0.5, 0.8), (-1.0, 2.0, 1.5), (1.4, 1.2, 0.4), (-2.0, 3.0, 0.0), (0.0, 0.0, 0.0)]
cams = {}
for obj in bpy.data.objects:
    if obj.type != "CAMERA" or "gifstream_split" not in obj:
        continue
    width, height = scene.render.resolution_x, scene.render.resolution_y
    pixels = []
    for p in probe:
        ndc = world_to_camera_view(scene, obj, Vector(p))
        pixels.append([ndc.x * width, (1.0 - ndc.y) * height, ndc.z])
    bg = obj.data.background_images
    cams[obj.name] = {"pixels": pixels, "split": obj["gifstream_split"], "has_footage": len(bg) > 0 and bg[0].clip is not None,
                      "clip_frames": bg[0].clip.frame_duration if len(bg) and bg[0].clip else 0}
result["cameras"] = cams
result["probe"] = probe
if len(sys.argv) > 5:
    blend, png = sys.argv[4:6]
    with bpy.data.libraries.load(blend, link=False) as (src, dst):
        dst.objects = [n for n in src.objects]
        dst.worlds = list(src.worlds)
    for obj in dst.objects:
        scene.collection.objects.link(obj)
    scene.world = dst.worlds[0]
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 32
    scene.cycles.use_denoising = False
    scene.cycles.max_bounces = 4
    scene.view_settings.view_transform = "Standard"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.frame_set(1)
    scene.render.filepath = png
    bpy.ops.render.render(write_still=True)
    result["rendered_camera"] = scene.camera.name
if result["status"] == ["FINISHED"]:
    view.view_transform, view.exposure = "AgX", 1.5  # an artist's choice for the CG: kept by an import told so
    bpy.ops.import_scene.gifstream_capture(filepath=capture, show_as_captured=False)
    result["colour"]["kept"] = [view.view_transform, view.exposure]
    bpy.ops.gifstream.show_as_captured()  # the Sequence panel's button
    result["colour"]["fixed"] = [view.view_transform, view.exposure]
with open(out_json, "w") as f:
    json.dump(result, f)
