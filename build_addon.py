"""Build the installable Blender extension: dist/gifstream_blender-<version>.zip.

The zip holds blender_addon/'s files at its root (blender_manifest.toml beside __init__.py), as Blender 4.2+
extensions expect, with its sub-packages (core/, scene/, ui/) as folders. Usage: python build_addon.py [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import zipfile

ROOT = os.path.dirname(os.path.abspath(__file__))
ADDON_DIR = os.path.join(ROOT, "blender_addon")


def addon_version() -> str:
    with open(os.path.join(ADDON_DIR, "blender_manifest.toml")) as f:
        match = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.MULTILINE)
    if not match:
        raise SystemExit("blender_addon/blender_manifest.toml has no version")
    return match.group(1)


def build(out_dir: str = os.path.join(ROOT, "dist")) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"gifstream_blender-{addon_version()}.zip")
    tmp = path + ".part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for folder, dirs, files in os.walk(ADDON_DIR):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".pyc", ".pyo")):
                    continue
                full = os.path.join(folder, name)
                zf.write(full, os.path.relpath(full, ADDON_DIR))
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "dist"))
    print(build(parser.parse_args().out))
