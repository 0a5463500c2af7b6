"""Runs in a Python with bpy, as a new user would: a new scene (Blender's defaults: AgX, the default pixel filters),
the add-on installed, the capture imported, the .gifs imported, then the proxy rendered from the capture's test
camera at the stream's first frame with only the sample count an artist would pick. argv: SPEC_JSON OUT_JSON

SPEC: "zip", "capture", "stream", "cache", "renders": [{"engine": CYCLES|BLENDER_EEVEE, "samples" (Cycles only,
optional), "path"}]. OUT: the view transform before and after the imports, the camera's name, the mapped frame.
"""

import json
import sys

import bpy
from bpy_helpers import call

spec_path, out_json = sys.argv[-2:]
with open(spec_path) as f:
    spec = json.load(f)
scene = bpy.context.scene
result = {"view_before": scene.view_settings.view_transform}
bpy.ops.extensions.package_install_files(filepath=spec["zip"], repo="user_default", enable_on_install=True)
for obj in list(bpy.data.objects):  # the startup cube would stand in front of the capture
    bpy.data.objects.remove(obj)
result["capture_import"] = call(bpy.ops.import_scene.gifstream_capture, filepath=spec["capture"])
result["sequence_import"] = call(bpy.ops.import_scene.gifstream_sequence, filepath=spec["stream"], cache_dir=spec["cache"])
result["view_after"] = scene.view_settings.view_transform
result["camera"] = scene.camera.name if scene.camera else None
scene.frame_set(scene.frame_start)
result["frame"] = scene.frame_current
for render in spec["renders"]:
    scene.render.engine = render["engine"]
    if render["engine"] == "CYCLES":
        scene.cycles.device = "CPU"
        scene.cycles.samples = render.get("samples", scene.cycles.samples)
    scene.render.filepath = render["path"]
    bpy.ops.render.render(write_still=True)
with open(out_json, "w") as f:
    json.dump(result, f)
