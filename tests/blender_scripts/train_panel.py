"""Runs in a Python with bpy: install the add-on, start training from the panel's operator, follow it, maybe cancel.

argv: ZIP CAPTURE RUN_DIR OUT_JSON MODE   (MODE: finish | cancel)
bpy's module has no event loop, so this script calls the add-on's timer function the way Blender would.
"""

import json
import sys
import time

import bpy

zip_path, capture, run_dir, out_json, mode = sys.argv[1:6]
bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
module = next(m for name, m in sys.modules.items() if name.endswith("gifstream_blender.ui.train_panel"))
s = bpy.context.scene.gifstream_train
s.capture_path, s.output_dir, s.preset, s.device, s.steps = capture, run_dir, "preview", "cpu", 40
s.extra_args = "--set train.max_anchors=600 --set train.log_every=2 --set train.checkpoint_every=1000"
result = {"start": sorted(bpy.ops.gifstream.train_start())}
job = module.current_job()
seen_progress = []
deadline = time.time() + 900
while time.time() < deadline:
    running = module.poll_training() is not None
    if job.total:
        seen_progress.append((job.step, s.progress, s.status))
    if mode == "cancel" and job.step >= 6 and running:
        result["cancel"] = sorted(bpy.ops.gifstream.train_cancel())
        break
    if not running:
        break
    time.sleep(0.2)
module.poll_training()
result.update(status=job.status, message=job.message, step=job.step, total=job.total, exit_code=job.engine.returncode,
              progress=seen_progress[-5:], n_progress=len(seen_progress), log_text=bpy.data.texts["GIFStream log"].as_string()[-2000:])
with open(out_json, "w") as f:
    json.dump(result, f)
