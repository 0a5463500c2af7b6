"""Test-only fault injection into processes the tests cannot reach into (Ray's worker processes).

The Ray tests put this folder on the workers' PYTHONPATH, so Python loads this file at start-up as
`sitecustomize`. With GIFSTREAM_TEST_CRASH="GOP:STEP" (the Ray backend forwards GIFSTREAM_* variables to its
tasks), a process that trains GOP `GOP` ends itself (os._exit(99), as a killed worker) after step STEP on its
first attempt; a later attempt, which resumes from the checkpoint, goes on. "GOP:STEP:always" ends every attempt.
"""

import os

SPEC = os.environ.get("GIFSTREAM_TEST_CRASH")

if SPEC:
    from gifstream_engine.train import driver

    _gop, _step, *_mode = SPEC.split(":")

    def _crash(done: "driver.StepDone") -> None:
        if done.gop == int(_gop) and done.step == int(_step) and (not done.resumed or _mode == ["always"]):
            os._exit(99)

    _init = driver.Training.__init__

    def _init_with_crash(self, *args, **kwargs):
        _init(self, *args, **kwargs)
        self.step_callbacks.append(_crash)

    driver.Training.__init__ = _init_with_crash
