"""Runs in a Python with bpy. argv: SPEC_JSON OUT_JSON. Playback of a PLY sequence with the add-on installed:

- "zip": the add-on build to install; "folder": the PLY sequence (fps 30, start frame 1, scene at 30 fps)
- "keep_freed_memory": the preference, set before the import
- "damage": a stream frame to cut in half after the frame before it was shown (its read-ahead already done)

Reports, per scene frame shown in order, the evaluated proxy's vertex count and the bytes the process read while the
frame changed (/proc/self/io rchar); whether the add-on set the allocator for playback; the vertices shown at the
damaged frame.
"""

import json
import sys
from importlib import import_module

import bpy

spec_path, out_json = sys.argv[-2:]
with open(spec_path) as f:
    spec = json.load(f)
ADDON = "bl_ext.user_default.gifstream_blender"
result = {}


def bytes_read() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


def vertices(obj) -> int:
    return len(obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data.vertices)


bpy.ops.extensions.package_install_files(filepath=spec["zip"], repo="user_default", enable_on_install=True)
for obj in list(bpy.data.objects):
    bpy.data.objects.remove(obj)
scene = bpy.context.scene
scene.render.fps, scene.render.fps_base, scene.frame_start = 30, 1.0, 1
bpy.context.preferences.addons[ADDON].preferences.keep_freed_memory = spec["keep_freed_memory"]
playback_memory = import_module(f"{ADDON}.core.playback_memory")
calls = []
apply = playback_memory.apply
playback_memory.apply = lambda: calls.append(1) or apply()
scene.frame_set(0)  # the import shows stream frame 0 (held before the start frame)
bpy.ops.import_scene.gifstream_sequence(filepath=spec["folder"], fps=30.0, start_frame=1)
result["allocator_set"] = bool(calls)
result["allocator_available"] = playback_memory.available()
proxy = next(o for o in bpy.data.objects if "GIFStream" in o.modifiers)
result["frames"] = []
for frame in range(1, spec["frames"] + 1):
    before = bytes_read()
    scene.frame_set(frame)
    result["frames"].append({"frame": frame, "bytes_read": bytes_read() - before, "vertices": vertices(proxy)})
if "damage" in spec:
    t = spec["damage"]
    scene.frame_set(t)  # shows stream frame t - 1 and reads stream frame t ahead
    path = spec["damage_path"]
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    scene.frame_set(t + 1)
    result["damaged_vertices"] = vertices(proxy)
with open(out_json, "w") as f:
    json.dump(result, f)
