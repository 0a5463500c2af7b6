"""Out-of-process training: launches `gifstream train --events`, follows its JSON-lines events, cancels it."""

import collections
import json
import os
import shlex

from . import engine_client
from .engine_process import EngineProcess

LOG_LINES = 2000


class TrainingJob:
    """One engine process (EngineProcess reads its output on threads); `poll()` applies the events on Blender's thread."""

    def __init__(self, python, capture, out, preset, device, steps=0, extra="", resume=False):
        self.out = out
        cmd = [python, "-m", engine_client.ENGINE_MODULE, "train", capture, "--out", out, "--events"]
        if preset:
            cmd += ["--preset", preset]
        if device and device != "auto":
            cmd += ["--device", device]
        if steps > 0:
            cmd += ["--steps", str(steps)]
        if resume:
            cmd.append("--resume")
        cmd += shlex.split(extra)
        self.command = cmd
        self.log = collections.deque(maxlen=LOG_LINES)
        self.status, self.message = "running", ""
        self.step = self.total = 0
        self.phase, self.psnr, self.eta, self.anchors = "", 0.0, 0.0, 0
        self.result = None
        os.makedirs(out, exist_ok=True)
        self.log_path = os.path.join(out, "blender_training.log")
        self._log_file = open(self.log_path, "a")
        self.engine = EngineProcess(cmd)

    def _apply(self, event):
        kind = event.get("type")
        if kind == "progress":
            self.step, self.total = event.get("step", 0), event.get("total", 0)
            self.phase, self.psnr = event.get("phase", ""), event.get("psnr", 0.0)
            self.eta, self.anchors = event.get("eta", 0.0), event.get("anchors", 0)
        elif kind == "log":
            self._write_log(event.get("message", ""))
        elif kind == "error":
            self.message = event.get("message", "")
        elif kind == "result":
            self.result = event.get("data", {})

    def _write_log(self, text):
        self.log.append(text)
        self._log_file.write(text + "\n")
        self._log_file.flush()

    def poll(self):
        """Apply pending output; returns True while the job is running."""
        for is_events, line in self.engine.lines():
            event = None
            if is_events and line.startswith("{"):
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    event = None
            if isinstance(event, dict):
                self._apply(event)
            elif line.strip():
                self._write_log(line)
        if self.status == "running" and self.engine.ended and self.engine.returncode is not None:
            self._finish()  # the engine exited and all it printed on stdout has been applied
        return self.status == "running"

    def _finish(self):
        code = self.engine.returncode
        if code == 0 and self.result and self.result.get("status") == "cancelled":
            self.status, self.message = "cancelled", f"stopped at step {self.result.get('step')}; checkpoint kept"
        elif code == 0:
            self.status = "finished"
            ev = (self.result or {}).get("eval") or {}
            if ev.get("test_psnr") is not None:
                self.message = f"test PSNR {ev['test_psnr']:.2f} dB, {ev.get('num_anchors', 0)} anchors"
        else:
            self.status = "failed"
            if not self.message:
                tail = [l for l in self.log if l.strip()]
                self.message = tail[-1] if tail else f"engine exited with code {code}"
            self.message = engine_client.engine_message(self.message)
        self._log_file.close()

    def cancel(self, timeout=60.0):
        """Ask the engine to stop (it saves a checkpoint), wait for it, kill it if it hangs."""
        self.engine.stop(timeout)
        self.poll()

    def status_line(self):
        if self.status != "running":
            return f"GIFStream: {self.status}" + (f" - {self.message}" if self.message else "")
        if not self.total:
            return "GIFStream: preparing (point cloud, anchors)..."
        return (f"GIFStream: step {self.step}/{self.total} {self.phase}  PSNR {self.psnr:.2f} dB  "
                f"{self.anchors} anchors  ETA {self.eta:.0f} s")
