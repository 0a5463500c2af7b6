"""Blender glue for a Gaussian sequence: the empty, the proxy object with its Geometry Nodes modifier, its settings,
built from a PLY folder or a decoded stream's cache, and pointed at another cache folder.

All or nothing: `build_sequence` either returns the finished objects or removes what it created and raises.
"""

from __future__ import annotations

import dataclasses
import math
import os

import bpy

from ..core.frame_checks import frame_problems
from ..core.sequence_files import SequenceError, SequencePattern, check_complete, check_sequence, find_pattern
from . import paths, proxy_nodes

MODIFIER_NAME = "GIFStream"
SOURCE_PROP = "gifstream_sequence"  # on the proxy object: where the sequence came from
# 2: quads by extrusion, pixel-filter compensation; 3: viewport thinning behind a Switch; 4: read-ahead (issue 29)
TREE_VERSION = 4
MIN_TRANSPARENT_BOUNCES = 256  # Cycles stops at this many overlapping quads per ray


@dataclasses.dataclass(frozen=True)
class SequenceSettings:
    name: str
    source: str  # the .gifs or PLY folder the artist chose
    stream_fps: float
    start_frame: int
    viewport_density: float = 1.0


def blender_dir(path: str) -> str:
    """The folder as the node tree stores it: relative to the .blend ('//') when saved, '/'-separated, ending in '/'."""
    return paths.relative(os.path.abspath(path)).replace("\\", "/").rstrip("/") + "/"


def _current(blocks, name: str, build):
    """The datablock `name` when this add-on version built it, else a new one from `build()`."""
    block = blocks.get(name)
    if block is None or block.get("gifstream_version") != TREE_VERSION:
        block = build()
        block["gifstream_version"] = TREE_VERSION
    return block


def proxy_tree():
    return _current(bpy.data.node_groups, proxy_nodes.TREE_NAME, proxy_nodes.build_proxy_tree)


def proxy_material():
    return _current(bpy.data.materials, proxy_nodes.MATERIAL_NAME, proxy_nodes.build_proxy_material)


def input_ids(tree) -> dict[str, str]:
    return {item.name: item.identifier for item in tree.interface.items_tree
            if item.item_type == "SOCKET" and item.in_out == "INPUT"}


def set_inputs(modifier, values: dict) -> None:
    ids = input_ids(modifier.node_group)
    for name, value in values.items():
        modifier[ids[name]] = value
    modifier.node_group.interface_update(bpy.context)


def get_input(modifier, name: str):
    return modifier[input_ids(modifier.node_group)[name]]


def sequence_modifier(obj):
    mod = obj.modifiers.get(MODIFIER_NAME) if obj is not None else None
    return mod if mod is not None and mod.type == "NODES" and mod.node_group is not None else None


def sequence_objects(scene) -> list:
    return [obj for obj in scene.objects if sequence_modifier(obj) is not None]


def sequence_object(context):
    """The active object when it is a sequence, else the scene's first sequence object (None if it has none)."""
    obj = context.active_object
    if sequence_modifier(obj) is not None:
        return obj
    return next(iter(sequence_objects(context.scene)), None)


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def pixel_angle(scene) -> float:
    """Radians per pixel of the scene camera at the render resolution (0 without a perspective camera)."""
    cam = scene.camera
    if cam is None or cam.type != "CAMERA" or cam.data.type != "PERSP":
        return 0.0
    scale = scene.render.resolution_percentage / 100
    width, height = scene.render.resolution_x * scale, scene.render.resolution_y * scale
    fit = cam.data.sensor_fit
    if fit == "AUTO":
        return cam.data.sensor_width / cam.data.lens / max(width, height)
    if fit == "HORIZONTAL":
        return cam.data.sensor_width / cam.data.lens / width
    return cam.data.sensor_height / cam.data.lens / height


# Variance (px^2, per axis) of a render engine's pixel filter of width w. Cycles (scene/film.cpp) samples the box
# over [-w/2, w/2], the Gaussian exp(-8 v^2 / w^2) (sigma w/4), Blackman-Harris over [-w, w] (variance 0.0767 w^2,
# integrated numerically); Eevee weighs its samples by a Gaussian fitted to Blackman-Harris, sigma 0.284 w.
CYCLES_FILTER_VARIANCE = {"BOX": 1 / 12, "GAUSSIAN": 1 / 16, "BLACKMAN_HARRIS": 0.0767}
EEVEE_FILTER_VARIANCE = 0.284 ** 2


def pixel_filter_variance(scene) -> float:
    """The variance of the scene's render engine's pixel filter, in px^2 (0 for other engines)."""
    engine = scene.render.engine
    if engine == "CYCLES":
        return CYCLES_FILTER_VARIANCE.get(scene.cycles.pixel_filter_type, 0.0) * scene.cycles.filter_width ** 2
    if engine.startswith("BLENDER_EEVEE"):
        return EEVEE_FILTER_VARIANCE * scene.render.filter_size ** 2
    return 0.0


def match_scene(modifier, scene) -> None:
    """The scene's frame rate, its camera's pixel size and its render engine's pixel filter into the modifier
    (they are not read live)."""
    values = {"Scene FPS": scene_fps(scene), "Pixel Angle": pixel_angle(scene), "Pixel Filter": pixel_filter_variance(scene)}
    ids = input_ids(modifier.node_group)  # a tree built by an older add-on (a saved .blend) may lack Pixel Filter
    set_inputs(modifier, {name: value for name, value in values.items() if name in ids})


def build_sequence(context, pattern: SequencePattern, settings: SequenceSettings):
    """A collection with an empty (place/scale the capture with it) and the proxy object parented under it."""
    scene = context.scene
    created = []
    try:
        tree, material = proxy_tree(), proxy_material()
        collection = bpy.data.collections.new(settings.name)
        created.append(collection)
        scene.collection.children.link(collection)
        origin = bpy.data.objects.new(f"{settings.name} origin", None)
        created.append(origin)
        origin.empty_display_type = "ARROWS"
        collection.objects.link(origin)
        mesh = bpy.data.meshes.new(settings.name)
        created.append(mesh)
        obj = bpy.data.objects.new(settings.name, mesh)
        created.append(obj)
        collection.objects.link(obj)
        obj.parent = origin
        obj.visible_shadow = False  # an emissive proxy: it neither casts nor needs shadows
        obj[SOURCE_PROP] = settings.source
        modifier = obj.modifiers.new(MODIFIER_NAME, "NODES")
        modifier.node_group = tree
        set_inputs(modifier, {
            "Directory": blender_dir(pattern.directory), "Prefix": pattern.prefix, "Digits": pattern.digits,
            "First Number": pattern.first, "Suffix": pattern.suffix, "Frames": pattern.count,
            "Stream FPS": float(settings.stream_fps), "Start Frame": settings.start_frame,
            "Viewport Density": settings.viewport_density, "Material": material,
        })
        match_scene(modifier, scene)
        obj.data.materials.append(material)
        scene.cycles.transparent_max_bounces = max(scene.cycles.transparent_max_bounces, MIN_TRANSPARENT_BOUNCES)
        last = settings.start_frame + math.ceil(pattern.count * scene_fps(scene) / settings.stream_fps) - 1
        scene.frame_end = max(scene.frame_end, last)
    except Exception:
        for block in reversed(created):
            remove_block(block)
        raise
    return origin, obj


def remove_block(block) -> None:
    for kind, data in ((bpy.types.Object, bpy.data.objects), (bpy.types.Mesh, bpy.data.meshes),
                       (bpy.types.Collection, bpy.data.collections)):
        if isinstance(block, kind):
            data.remove(block)
            return


def resolved_directory(modifier) -> str:
    return paths.absolute(get_input(modifier, "Directory"))


def sequence_pattern(modifier) -> SequencePattern:
    """The pattern the modifier reads now (its folder resolved against the .blend's location)."""
    return SequencePattern(resolved_directory(modifier), get_input(modifier, "Prefix"), get_input(modifier, "Digits"),
                           get_input(modifier, "First Number"), get_input(modifier, "Frames"), get_input(modifier, "Suffix"))


def check_cache(modifier, wait: bool = True) -> int:
    """`SequenceError`, one line, when the cache the modifier reads is not where its path says (e.g. after the .blend
    moved), or when frames in it are missing or damaged (missing, cut short or not a PLY: those show empty, in the
    viewport and in renders; vertex data that does not match its header's CRC-32: drawn as it is). Returns how
    many frames' vertex data is still being checked in the background (`wait=False`, a panel), else 0."""
    pattern = sequence_pattern(modifier)
    check_complete(pattern.directory)
    if not os.path.isdir(pattern.directory):
        raise SequenceError(f"the cache folder {get_input(modifier, 'Directory')} ({pattern.directory}) does not exist; "
                            f"if the .blend or the cache moved, set the folder with GIFStream > Sequence > Relocate")
    report = frame_problems(pattern, wait)
    problems = report.problems
    if problems:
        drawn = sum(not p.shows_empty for p in problems)
        empty = len(problems) - drawn
        how = (" and show empty" if not drawn else ", drawn as they are" if not empty
               else f" ({empty} show empty, {drawn} drawn as they are)")
        raise SequenceError(f"{len(problems)} of {pattern.count} frames are missing or damaged{how}, first "
                            f"stream frame {problems[0].frame}: {problems[0].message}; decode the stream again or "
                            f"relocate the cache")
    return report.unchecked


def relocate(modifier, folder: str) -> None:
    """Point the modifier at the PLY sequence in `folder`, every frame's header checked first (`SequenceError`)."""
    pattern = find_pattern(folder)
    check_sequence(pattern)
    set_inputs(modifier, {"Directory": blender_dir(folder), "Prefix": pattern.prefix, "Digits": pattern.digits,
                          "First Number": pattern.first, "Suffix": pattern.suffix, "Frames": pattern.count})


# -- import --------------------------------------------------------------------------------------------------------

def default_cache_dir(stream: str) -> str:
    """Next to the .blend when it is saved (so '//' paths travel with it), else next to the stream."""
    stem = os.path.splitext(os.path.basename(stream))[0]
    if bpy.data.filepath:
        return os.path.join(os.path.dirname(bpy.data.filepath), "gifstream_cache", stem)
    return os.path.join(os.path.dirname(os.path.abspath(stream)), f"{stem}_cache")


def build_from_folder(context, settings: SequenceSettings, folder: str):
    """Check every frame's header, then build; nothing is created when a file is wrong."""
    pattern = find_pattern(folder)
    check_sequence(pattern)
    return build_sequence(context, pattern, settings)


def import_folder(context, path: str, fps: float, start_frame: int, viewport_density: float) -> SequenceSettings:
    """Build the PLY sequence in `path` (a folder or a PLY inside it); `SequenceError` when it is not one."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    name = os.path.basename(os.path.normpath(folder)) or "gaussians"
    settings = SequenceSettings(name, folder, fps, start_frame, viewport_density)
    build_from_folder(context, settings, folder)
    return settings


def build_decoded(context, job, settings: SequenceSettings) -> str:
    """After a decode job (core.decode_job) ended: build the scene from its cache; returns the message for the
    artist (the job fails when its cache does not hold the sequence)."""
    if job.status != "finished":
        return job.status_line()
    try:
        build_from_folder(context, settings, job.cache_dir)
    except SequenceError as exc:
        job.status, job.message = "failed", str(exc)
        return job.status_line()
    return f"GIFStream: imported {settings.name}, {job.total} frames from {job.cache_dir}"
