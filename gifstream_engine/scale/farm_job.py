"""An Open Job Description template (`specificationVersion: jobtemplate-2023-09`, what AWS Deadline Cloud runs
natively and `openjd run` runs locally) that trains a run on a render farm with the `gifstream` CLI:

  TrainGop0   `gifstream train CAPTURE --out RUN --gop 0 --resume [--preset ...]`   (writes RUN/config.json)
  TrainGops   one task per later GOP: `gifstream train CAPTURE --out RUN --gop N`  (after TrainGop0)
  Assemble    `gifstream assemble RUN --capture CAPTURE -o RUN/<name>.gifs`        (after every GOP)

Paths are job parameters (`CaptureDir`, `RunDir`: storage every worker sees; `Gifstream`: the executable), so a
submitter can map them per platform; the bitstream's path is relative to `RunDir`. Every task continues what the
run folder holds, so a requeued task resumes from its GOP's checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys

from ..capture import Capture
from ..errors import ConfigError
from ..fileio import atomic_open
from ..train.config import RunConfig

SPEC = "jobtemplate-2023-09"


@dataclasses.dataclass(frozen=True)
class FarmJob:
    template: dict
    num_gops: int

    @property
    def gop_tasks(self) -> int:
        return self.num_gops - 1


def default_command() -> str:
    """This installation's `gifstream` executable (the console script beside the interpreter), else the name."""
    beside = os.path.join(os.path.dirname(sys.executable), "gifstream")
    return beside if os.access(beside, os.X_OK) else (shutil.which("gifstream") or "gifstream")


def farm_job(capture: Capture, capture_dir: str, run_dir: str, presets: list[str], overrides: list[str], cfg: RunConfig,
             command: str | None = None, template_dir: str = ".") -> FarmJob:
    """The template; the default CaptureDir and RunDir are relative to `template_dir` (where it is written), as
    OpenJD resolves PATH defaults against the template's folder."""
    num_gops = len(capture.gops(cfg.train.gop_length))
    config_args = [a for p in presets for a in ("--preset", p)] + [a for o in overrides for a in ("--set", o)]
    train = ["train", "{{Param.CaptureDir}}", "--out", "{{Param.RunDir}}", "--gop"]
    name = os.path.basename(os.path.normpath(run_dir)) or "run"
    steps = [_step("TrainGop0", train + ["0", "--resume"] + config_args, after=None)]
    if num_gops > 1:
        steps.append(_step("TrainGops", train + ["{{Task.Param.Gop}}"], after="TrainGop0",
                           tasks={"taskParameterDefinitions": [{"name": "Gop", "type": "INT", "range": f"1-{num_gops - 1}"}]}))
    steps.append(_step("Assemble", ["assemble", "{{Param.RunDir}}", "--capture", "{{Param.CaptureDir}}",
                                    "-o", "{{Param.RunDir}}/" + f"{name}.gifs"], after=steps[-1]["name"]))
    template = {
        "specificationVersion": SPEC,
        "name": f"GIFStream {os.path.basename(os.path.normpath(capture_dir))} ({num_gops} GOPs)",
        "parameterDefinitions": [
            _path_parameter("CaptureDir", "IN", capture_dir, template_dir, "the multi-view capture, on storage every worker sees"),
            _path_parameter("RunDir", "OUT", run_dir, template_dir,
                            "the run folder the GOP tasks share; the .gifs is written into it"),
            {"name": "Gifstream", "type": "STRING", "default": command or default_command(),
             "description": "the gifstream executable on the workers"},
        ],
        "steps": steps,
    }
    return FarmJob(template, num_gops)


def _path_parameter(name: str, flow: str, path: str, template_dir: str, description: str) -> dict:
    """A PATH job parameter; OpenJD takes a default only relative to the template's folder and inside it, so a path
    elsewhere is left for the submitter (`-p NAME=PATH`) and named in the description."""
    param = {"name": name, "type": "PATH", "objectType": "DIRECTORY", "dataFlow": flow}
    relative = os.path.relpath(path, template_dir)
    if relative.split(os.sep)[0] != os.pardir:
        param["default"] = relative
    else:
        description += f" (written for {path})"
    return param | {"description": description}


def missing_defaults(template: dict) -> dict[str, str]:
    """Parameters without a default and the path the template was written for: the `-p` a submitter gives."""
    return {p["name"]: p["description"].rsplit("(written for ", 1)[1][:-1]
            for p in template["parameterDefinitions"] if "default" not in p and "(written for " in p["description"]}


def _step(name: str, args: list[str], after: str | None, tasks: dict | None = None) -> dict:
    step = {"name": name}
    if after:
        step["dependencies"] = [{"dependsOn": after}]
    if tasks:
        step["parameterSpace"] = tasks
    step["script"] = {"actions": {"onRun": {"command": "{{Param.Gifstream}}", "args": args}}}
    return step


TEMPLATE_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


def template_format(path: str) -> str:
    """"yaml" or "json", from the template file's suffix; ConfigError for any other (OpenJD reads these two)."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in TEMPLATE_FORMATS:
        raise ConfigError(f"job template {path}: the file name must end in .yaml or .yml (YAML) or .json (JSON), "
                          f"the formats OpenJD reads; got {suffix or 'no suffix'!r}")
    return TEMPLATE_FORMATS[suffix]


def write_farm_job(path: str, capture: Capture, capture_dir: str, run_dir: str, presets: list[str], overrides: list[str],
                   cfg: RunConfig, command: str | None = None) -> FarmJob:
    """The template as YAML for a .yaml/.yml path, as JSON for a .json path (`template_format`)."""
    fmt = template_format(path)
    job = farm_job(capture, capture_dir, run_dir, presets, overrides, cfg, command,
                   template_dir=os.path.dirname(os.path.abspath(path)))
    text = json.dumps(job.template, indent=2) + "\n" if fmt == "json" else to_yaml(job.template)
    with atomic_open(path, "w") as f:
        f.write(text)
    return job


def to_yaml(value, indent: int = 0) -> str:
    """Block-style YAML of dicts, lists, strings and numbers; strings double-quoted (JSON escapes are YAML's)."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:\n{to_yaml(item, indent + 2)}")
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}\n")
        return "".join(lines)
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, (dict, list)) and item:
                inner = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {inner[indent + 2:]}")
            else:
                lines.append(f"{pad}- {_scalar(item)}\n")
        return "".join(lines)
    return f"{pad}{_scalar(value)}\n"


def _scalar(value) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)  # empty
    return json.dumps(str(value))
