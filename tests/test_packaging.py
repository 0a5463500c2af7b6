"""The engine as a plain (non-editable) wheel: what a Ray or farm worker installs. Its presets ship inside the
package, and the declared torch/gsplat ranges accept the torch already installed (nothing more to install)."""

import glob
import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> str:
    """A wheel built from a copy of the sources (the build writes build/ and *.egg-info next to them)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(os.path.join(REPO, "gifstream_engine"), src / "gifstream_engine",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), src / name)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    (path,) = glob.glob(str(dist / "gifstream_engine-*.whl"))
    return path


def test_wheel_in_a_fresh_venv_loads_its_presets(wheel, tmp_path):
    """A fresh venv holds only the wheel. Its dependencies (torch alone is ~1 GB) come from this environment's
    site-packages through a path entry appended after the venv's own: a `.pth` line adds the folder without
    running that folder's .pth files, so this environment's editable install of the engine stays invisible and
    `gifstream_engine` can only come from the wheel."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel],
                   check=True, capture_output=True, text=True, timeout=300)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(site, "zz_shared_dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = ("import json, os, gifstream_engine; from gifstream_engine.train.config import PRESET_DIR, load_config; "
             "cfg = load_config(['n3dv', 'r2']); "
             "print(json.dumps({'file': gifstream_engine.__file__, 'presets': sorted(os.listdir(PRESET_DIR)), "
             "'gop_length': cfg.train.gop_length, 'steps': load_config(['preview']).train.steps}))")
    out = subprocess.run([python, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout)
    assert found["file"].startswith(site)  # the wheel's copy, not the repository's
    assert {"preview.toml", "n3dv.toml", "r0.toml", "r3.toml"} <= set(found["presets"])
    assert found["steps"] == 1500
    cli = subprocess.run([str(venv / "bin" / "gifstream"), "train", "--help"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0 and "--workers" in cli.stdout


def test_declared_ranges_accept_the_installed_torch(wheel, tmp_path):
    """Installing the wheel into this environment (dry run, offline) would install the engine and nothing else:
    the torch and gsplat already here satisfy its ranges."""
    check = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "-q", "--report",
                            str(tmp_path / "report.json"), wheel], capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr[-2000:]
    with open(tmp_path / "report.json") as f:
        install = json.load(f)["install"]
    assert [item["metadata"]["name"] for item in install] == ["gifstream-engine"]
    requires = install[0]["metadata"]["requires_dist"]
    assert "torch<3,>=2.6" in requires and "gsplat<1.6,>=1.5" in requires
