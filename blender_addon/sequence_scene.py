"""Blender glue for a Gaussian sequence: the empty, the proxy object with its Geometry Nodes modifier, its settings.

All or nothing: `build_sequence` either returns the finished objects or removes what it created and raises.
"""

from __future__ import annotations

import dataclasses
import math
import os

import bpy

from . import proxy_nodes
from .sequence_files import SequenceError, SequencePattern

MODIFIER_NAME = "GIFStream"
SOURCE_PROP = "gifstream_sequence"  # on the proxy object: where the sequence came from
TREE_VERSION = 1
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
    path = os.path.abspath(path)
    if bpy.data.filepath:
        try:
            path = bpy.path.relpath(path)
        except ValueError:  # another drive on Windows
            pass
    return path.replace("\\", "/").rstrip("/") + "/"


def proxy_tree():
    tree = bpy.data.node_groups.get(proxy_nodes.TREE_NAME)
    if tree is None or tree.get("gifstream_version") != TREE_VERSION:
        tree = proxy_nodes.build_proxy_tree()
        tree["gifstream_version"] = TREE_VERSION
    return tree


def proxy_material():
    mat = bpy.data.materials.get(proxy_nodes.MATERIAL_NAME)
    if mat is None or mat.get("gifstream_version") != TREE_VERSION:
        mat = proxy_nodes.build_proxy_material()
        mat["gifstream_version"] = TREE_VERSION
    return mat


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


def match_scene(modifier, scene) -> None:
    """The scene's frame rate and its camera's pixel size into the modifier (they are not read live)."""
    set_inputs(modifier, {"Scene FPS": scene_fps(scene), "Pixel Angle": pixel_angle(scene)})


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
    return os.path.abspath(bpy.path.abspath(get_input(modifier, "Directory")))


def sequence_pattern(modifier) -> SequencePattern:
    """The pattern the modifier reads now (its folder resolved against the .blend's location)."""
    return SequencePattern(resolved_directory(modifier), get_input(modifier, "Prefix"), get_input(modifier, "Digits"),
                           get_input(modifier, "First Number"), get_input(modifier, "Frames"), get_input(modifier, "Suffix"))


def check_cache(modifier) -> None:
    """`SequenceError` when the cache the modifier reads is not where its path says (e.g. after the .blend moved)."""
    pattern = sequence_pattern(modifier)
    if not os.path.isdir(pattern.directory):
        raise SequenceError(f"the cache folder {get_input(modifier, 'Directory')} ({pattern.directory}) does not exist; "
                            f"if the .blend or the cache moved, set the folder with GIFStream > Sequence > Relocate")
    missing = [t for t in range(pattern.count) if not os.path.isfile(pattern.path(t))]
    if missing:
        raise SequenceError(f"the cache folder {pattern.directory} lacks {len(missing)} of {pattern.count} frames, "
                            f"first {pattern.filename(missing[0])}")
