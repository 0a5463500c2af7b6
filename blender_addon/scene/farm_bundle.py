"""Render-farm bundle: a folder with a copy of the .blend, every sequence's per-frame cache under `cache/` and every
compositing layer's EXR sequence under `layers/`, referenced by '//' paths, that renders with no add-on, no engine,
no GPU and scripts disabled: `blender -b --factory-startup --disable-autoexec BUNDLE/NAME.blend -a`.
(Operator: ui.sequence_panel.)"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil

import bpy

from ..core.sequence_files import SequenceError
from . import compositing, paths, sequence_scene

_LAYER_FILE = re.compile(rf"^{re.escape(compositing.PREFIX)}\d+\.exr$")
DEFAULT_BLEND_NAME = "gifstream_scene.blend"  # the bundle's .blend when the open one was never saved


@dataclasses.dataclass(frozen=True)
class BundleReport:
    blend: str
    sequences: int
    files: int
    bytes: int
    layers: int = 0


def _folder_name(name: str, taken: set[str]) -> str:
    base = compositing.safe_name(name)
    folder, i = base, 1
    while folder in taken:
        i += 1
        folder = f"{base}_{i}"
    taken.add(folder)
    return folder


def layer_images():
    """The compositing layers' image sequences in use (the compositor of some scene shows them)."""
    return [image for image in bpy.data.images if compositing.IMAGE_PROP in image and image.users > 0]


def layer_files(image) -> list[str]:
    """The EXR files of a compositing layer; `SequenceError` when its folder is gone."""
    first = paths.absolute(image.filepath)
    folder = os.path.dirname(first)
    files = sorted(name for name in os.listdir(folder) if _LAYER_FILE.match(name)) if os.path.isdir(folder) else []
    if not os.path.isfile(first) or not files:
        raise SequenceError(f"the compositing layer {image.name} reads {image.filepath} ({first}), which does not "
                            f"exist; render it again (GIFStream > Sequence > Render Compositing Layer)")
    return [os.path.join(folder, name) for name in files]


def export_bundle(scene, directory: str, blend_name: str = "") -> BundleReport:
    """Checks every cache and layer first (a missing one raises `SequenceError` before anything is written). The
    bundle's .blend is `blend_name`, else the open file's name."""
    blend_name = blend_name or os.path.basename(bpy.data.filepath) or DEFAULT_BLEND_NAME
    objects = sequence_scene.sequence_objects(scene)
    modifiers = [sequence_scene.sequence_modifier(obj) for obj in objects]
    for modifier in modifiers:
        sequence_scene.check_cache(modifier)
    layers = [(image, layer_files(image)) for image in layer_images()]
    for modifier in modifiers:  # the farm renders with the scene's camera and frame rate as they are now
        sequence_scene.match_scene(modifier, scene)
    directory = os.path.abspath(directory)
    if os.path.abspath(os.path.dirname(bpy.data.filepath or "/nonexistent/x")) == directory:
        raise SequenceError(f"{directory} holds the open .blend; choose an empty folder for the bundle")
    os.makedirs(directory, exist_ok=True)
    taken: set[str] = set()
    taken_layers: set[str] = set()
    files = size = 0
    originals, image_paths = [], []
    try:
        for obj, modifier in zip(objects, modifiers):
            pattern = sequence_scene.sequence_pattern(modifier)
            folder = _folder_name(obj.name, taken)
            target = os.path.join(directory, "cache", folder)
            os.makedirs(target, exist_ok=True)
            for t in range(pattern.count):
                shutil.copy2(pattern.path(t), os.path.join(target, pattern.filename(t)))
                files += 1
                size += os.path.getsize(pattern.path(t))
            originals.append((modifier, sequence_scene.get_input(modifier, "Directory")))
            sequence_scene.set_inputs(modifier, {"Directory": f"//cache/{folder}/"})
        for image, exrs in layers:
            target = os.path.join(directory, "layers", _folder_name(image.get(compositing.IMAGE_PROP) or image.name,
                                                                    taken_layers))
            os.makedirs(target, exist_ok=True)
            for path in exrs:
                shutil.copy2(path, os.path.join(target, os.path.basename(path)))
                files += 1
                size += os.path.getsize(path)
            image_paths.append((image, image.filepath))
            # relative to the open .blend (save_as_mainfile remaps it to the bundle), or absolute when unsaved
            image.filepath = paths.relative(os.path.join(target, os.path.basename(bpy.path.abspath(image.filepath))))
        blend = os.path.join(directory, blend_name)
        bpy.ops.wm.save_as_mainfile(filepath=blend, copy=True, relative_remap=True, compress=False)
    finally:
        for modifier, original in originals:  # the open file keeps reading its own cache and layers
            sequence_scene.set_inputs(modifier, {"Directory": original})
        for image, original in image_paths:
            image.filepath = original
    return BundleReport(blend, len(objects), files, size, len(layers))
