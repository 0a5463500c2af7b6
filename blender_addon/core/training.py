"""Out-of-process training: launches `gifstream train --events`, follows its JSON-lines events, cancels it."""

import os
import shlex

from .engine_job import EngineJob

LOG_FILE = "blender_training.log"  # in the run folder: the engine's whole log


class TrainingJob(EngineJob):
    """Progress from the engine's events (`step` of `total`, phase, PSNR, anchors, ETA); a cancelled training keeps
    its checkpoint (the engine saves it on SIGTERM and reports it in its result)."""

    def __init__(self, python, capture, out, preset, device, steps=0, extra="", resume=False):
        self.out = out
        args = ["train", capture, "--out", out, "--events"]
        if preset:
            args += ["--preset", preset]
        if device and device != "auto":
            args += ["--device", device]
        if steps > 0:
            args += ["--steps", str(steps)]
        if resume:
            args.append("--resume")
        args += shlex.split(extra)
        self.phase, self.psnr, self.eta, self.anchors = "", 0.0, 0.0, 0
        self.stage = "train"  # or "compile": the engine builds gsplat's GPU kernels before its first CUDA step
        os.makedirs(out, exist_ok=True)
        super().__init__(python, args, log_path=os.path.join(out, LOG_FILE))

    @property
    def step(self) -> int:
        return self.done

    def _on_progress(self, event):
        self.stage = event.get("stage", "train")
        self.done, self.total = event.get("step", 0), event.get("total", 0)
        self.phase, self.psnr = event.get("phase", ""), event.get("psnr", 0.0)
        self.eta, self.anchors = event.get("eta", 0.0), event.get("anchors", 0)

    def _finish(self, code):
        if code == 0 and self.result and self.result.get("status") == "cancelled":
            self._end("cancelled", f"stopped at step {self.result.get('step')}; checkpoint kept")
        elif code == 0:
            ev = (self.result or {}).get("eval") or {}
            has_psnr = ev.get("test_psnr") is not None
            self._end("finished", f"test PSNR {ev['test_psnr']:.2f} dB, {ev.get('num_anchors', 0)} anchors"
                      if has_psnr else self.message)
        else:
            self._end("failed", self._failure(code))

    def _progress_text(self):
        if self.stage == "compile":
            return f"compiling GPU kernels {self.done}/{self.total} (once per machine; not training time)"
        if not self.total:
            return "preparing (point cloud, anchors)..."
        return (f"step {self.done}/{self.total} {self.phase}  PSNR {self.psnr:.2f} dB  "
                f"{self.anchors} anchors  ETA {self.eta:.0f} s")
