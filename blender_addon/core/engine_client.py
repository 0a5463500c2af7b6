"""Talks to the engine in its own process: finds its Python and runs `gifstream` commands (no torch, no bpy here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from .conventions import ERROR_PREFIX

ENV_VAR = "GIFSTREAM_ENGINE_PYTHON"
ENGINE_MODULE = "gifstream_engine.cli"
REPORT_PREFIX = "gifstream: "  # the first word of every line the engine's CLI reports on stderr


class EngineError(RuntimeError):
    """The engine could not be found or reported an error; the message is meant for the artist."""


def can_import_engine(python: str) -> bool:
    try:
        proc = subprocess.run([python, "-c", "import gifstream_engine"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def find_engine_python(preference: str = "", abspath=os.path.abspath) -> str:
    """The preference, else $GIFSTREAM_ENGINE_PYTHON, else a Python on this machine that imports the engine.
    `abspath` resolves the first two (in Blender: '//' relative to the .blend)."""
    for label, candidate in (("add-on preference 'Engine Python'", preference), (f"${ENV_VAR}", os.environ.get(ENV_VAR, ""))):
        if candidate:
            path = abspath(candidate)
            if not os.path.isfile(path):
                raise EngineError(f"{label} points to {path}, which does not exist")
            if not can_import_engine(path):
                raise EngineError(f"{label}: {path} cannot import gifstream_engine (install the engine into it)")
            return path
    for candidate in (sys.executable, shutil.which("python3"), shutil.which("python")):
        if candidate and can_import_engine(candidate):
            return candidate
    raise EngineError(
        f"no Python with gifstream_engine found: set the add-on preference 'Engine Python' or ${ENV_VAR}"
    )


def run_engine(python: str, args: list[str], timeout: float = 600) -> str:
    """Run `gifstream ARGS` and return its stdout; the engine's own error message on failure."""
    cmd = [python, "-m", ENGINE_MODULE, *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise EngineError(f"the engine did not answer within {timeout:.0f} s: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        raise EngineError(engine_message(proc.stderr) or f"exit code {proc.returncode}")
    return proc.stdout


def engine_message(text: str) -> str:
    """The engine's one-line report (its last line on stderr) for the artist, without the program prefix: a user
    error as it is, a bug as "internal error: ...; the traceback is in <crash log>"."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].removeprefix(ERROR_PREFIX).removeprefix(REPORT_PREFIX) if lines else ""


def doctor(python: str) -> dict:
    """`gifstream doctor --json`: checks, the rasteriser per device, and one line per problem (what to do)."""
    out = run_engine(python, ["doctor", "--json"], timeout=120)
    try:
        report = json.loads(out)
    except json.JSONDecodeError as exc:
        raise EngineError("the engine printed no environment report (gifstream doctor --json)") from exc
    if not isinstance(report, dict) or not isinstance(report.get("rasterizers"), dict):
        raise EngineError("the engine's environment report has no rasterisers")
    return report


def doctor_summary(report: dict) -> str:
    """One line: the rasteriser each device would use, and how many problems there are."""
    devices = ", ".join(f"{device}: {name}" for device, name in sorted(report["rasterizers"].items()))
    problems = report.get("problems") or []
    return f"rasteriser {devices}; " + (f"{len(problems)} problem(s), see the Info log" if problems else "no problems")


def capture_info(python: str, path: str) -> dict:
    out = run_engine(python, ["capture", "info", path, "--json"])
    try:
        return json.loads(out)
    except json.JSONDecodeError as exc:
        raise EngineError(f"the engine printed no rig description for {path}") from exc


def stream_info(python: str, path: str) -> dict:
    """The header of a `.gifs` (frames, fps, cameras); the engine checks every section's CRC first."""
    out = run_engine(python, ["info", path, "--json"])
    try:
        return json.loads(out)["header"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise EngineError(f"the engine printed no stream header for {path}") from exc
