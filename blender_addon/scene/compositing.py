"""The exact compositing layer: the engine rasterises a sequence from the scene camera over the frame range into
a multilayer EXR sequence (RGBA + Z), and the compositor puts it together with the CG render by depth.

The scene camera is exported per frame (its animation, lens and shift included) in the engine's OpenCV
convention; the sequence's placement (its empty, i.e. the proxy object's world matrix) goes along, so the engine
renders the capture where the artist put it and writes depth in world units. The proxy stays in the scene for
reflections but is hidden from camera rays, so it does not show twice.

Here: the cameras file, the engine job's start, the compositor wired to its result (operators: ui.compositing_layer).
"""

from __future__ import annotations

import os
import re

import bpy

from ..core.layer_job import LayerJob
from . import paths, rig, sequence_scene

CAMERAS_FORMAT, CAMERAS_VERSION = "gifstream-layer-cameras", 1  # gifstream_engine/render/exr_layer.py reads it
PREFIX = "layer_"
IMAGE_PROP = "gifstream_layer"  # on the image datablock: the sequence object it shows (the farm bundle looks for it)
NODE_IMAGE, NODE_ZCOMBINE, NODE_RLAYERS, NODE_OUTPUT = ("GIFStream Layer", "GIFStream Z Combine",
                                                        "GIFStream Render Layers", "GIFStream Output")
TREE_NAME = "GIFStream Compositing"


class LayerSetupError(ValueError):
    """The scene cannot be rendered as a layer (no camera, an orthographic one, ...); the message says why."""


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "sequence"


def default_folder(obj) -> str:
    """`gifstream_layer/NAME/` next to the .blend (a '//' path once saved), else beside the sequence's cache folder."""
    if bpy.data.filepath:
        return os.path.join(os.path.dirname(bpy.data.filepath), "gifstream_layer", safe_name(obj.name))
    cache = sequence_scene.resolved_directory(sequence_scene.sequence_modifier(obj))
    return os.path.join(os.path.dirname(cache), f"{safe_name(obj.name)}_layer")


def render_size(scene) -> tuple[int, int]:
    scale = scene.render.resolution_percentage / 100
    return max(1, round(scene.render.resolution_x * scale)), max(1, round(scene.render.resolution_y * scale))


def frame_range(scene) -> list[int]:
    """Every frame of the range (a frame step would leave gaps in the image sequence)."""
    return list(range(scene.frame_start, scene.frame_end + 1))


def matrix_rows(m) -> list[list[float]]:
    return [[float(v) for v in row] for row in m]


def export_cameras(scene, obj) -> dict:
    """The cameras file for the engine: the scene camera and the proxy's placement at every frame of the range, and
    the proxy's frame mapping. The proxy's modifier is muted meanwhile (stepping frames would load every PLY) and the frame restored."""
    modifier = sequence_scene.sequence_modifier(obj)
    if scene.render.use_border and scene.render.use_crop_to_border:
        raise LayerSetupError("the render is cropped to a border; the compositing layer renders the whole frame")
    frames = frame_range(scene)
    if frames[0] < 0:
        raise LayerSetupError(f"the frame range starts at {frames[0]}; image sequences need frames from 0")
    width, height = render_size(scene)
    aspect = (scene.render.pixel_aspect_x, scene.render.pixel_aspect_y)
    current, shown = scene.frame_current, modifier.show_viewport
    entries = []
    try:
        modifier.show_viewport = False
        for frame in frames:
            scene.frame_set(frame)
            camera = scene.camera  # markers may switch cameras
            if camera is None or camera.type != "CAMERA":
                raise LayerSetupError(f"the scene has no camera at frame {frame}; set Scene > Camera")
            try:
                K = rig.camera_intrinsics(camera.data, width, height, *aspect)
            except ValueError as exc:
                raise LayerSetupError(str(exc)) from exc
            entries.append({"frame": frame, "width": width, "height": height, "K": K,
                            "w2c": matrix_rows(rig.camera_w2c(camera.matrix_world)),
                            "capture_to_world": matrix_rows(obj.matrix_world)})  # the empty may be animated too
    finally:
        modifier.show_viewport = shown
        scene.frame_set(current)
    return {"format": CAMERAS_FORMAT, "version": CAMERAS_VERSION,
            "start_frame": int(sequence_scene.get_input(modifier, "Start Frame")),
            "stream_fps": float(sequence_scene.get_input(modifier, "Stream FPS")),
            "scene_fps": float(sequence_scene.get_input(modifier, "Scene FPS")),
            "frames": entries}


def engine_source(obj) -> str:
    """What the engine rasterises: the `.gifs` the sequence came from when it is still there (the model's own
    view-dependent colours for this camera), else the per-frame PLY cache the proxy reads."""
    source = obj.get(sequence_scene.SOURCE_PROP, "")
    if source and source.lower().endswith(".gifs") and os.path.isfile(paths.absolute(source)):
        return paths.absolute(source)
    modifier = sequence_scene.sequence_modifier(obj)
    sequence_scene.check_cache(modifier)
    return sequence_scene.resolved_directory(modifier)


def start_layer(python: str, scene, obj, directory: str = "") -> LayerJob:
    """Export the cameras and start the engine on the sequence object `obj` (`LayerSetupError`, `SequenceError`,
    `OSError` when it cannot start); the EXRs go to `directory`, else `default_folder(obj)`."""
    folder = paths.absolute(directory) if directory else default_folder(obj)
    source = engine_source(obj)
    return LayerJob(python, source, export_cameras(scene, obj), folder, PREFIX)


# -- compositor ----------------------------------------------------------------------------------------------------

def compositor_tree(scene):
    """The scene's compositing node tree: a node group assigned to the scene in Blender 5.0+, `scene.node_tree` with
    use_nodes before."""
    if hasattr(scene, "compositing_node_group"):
        tree = scene.compositing_node_group
        if tree is None:
            tree = bpy.data.node_groups.new(TREE_NAME, "CompositorNodeTree")
            scene.compositing_node_group = tree
        return tree
    scene.use_nodes = True
    return scene.node_tree


def _node(tree, kind: str, name: str, location):
    node = tree.nodes.get(name)
    if node is None or node.bl_idname != kind:
        if node is not None:
            tree.nodes.remove(node)
        node = tree.nodes.new(kind)
        node.name = node.label = name
    node.location = location
    return node


def _output(tree, source_socket):
    """Link the composite result: the tree's Group Output (5.0+) or a Composite node (4.x), the one already there if any."""
    kind = "CompositorNodeComposite" if hasattr(bpy.types, "CompositorNodeComposite") else "NodeGroupOutput"
    if kind == "NodeGroupOutput" and not any(item.item_type == "SOCKET" and item.in_out == "OUTPUT"
                                             for item in tree.interface.items_tree):
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    outputs = [n for n in tree.nodes if n.bl_idname == kind]
    out = next((n for n in outputs if getattr(n, "is_active_output", False)), None) or (outputs[0] if outputs else None)
    if out is None:
        out = _node(tree, kind, NODE_OUTPUT, (700, 0))
    if kind == "NodeGroupOutput":
        out.is_active_output = True
    tree.links.new(source_socket, out.inputs[0])
    return out


def _socket(sockets, *names):
    for name in names:
        if name in sockets:
            return sockets[name]
    raise KeyError(f"none of the sockets {names} (has {[s.name for s in sockets]})")


def layer_image(obj, first_file: str):
    """The EXR sequence as an image datablock (one per sequence object, reloaded when it exists)."""
    name = f"GIFStream layer {obj.name}"
    image = bpy.data.images.get(name)
    path = paths.relative(first_file)
    if image is None:
        image = bpy.data.images.load(os.path.abspath(first_file), check_existing=False)
        image.name = name
    image.filepath = path
    image.source = "SEQUENCE"
    image.reload()
    image[IMAGE_PROP] = obj.name
    return image


def wire_compositor(scene, obj, folder: str, frames: list[int]):
    """Render Layers (CG, with its Z pass) and the layer's EXR sequence into a Z Combine that uses alpha, to the
    composite output: CG and capture occlude each other by depth, soft edges blend by alpha."""
    image = layer_image(obj, os.path.join(folder, f"{PREFIX}{frames[0]:04d}.exr"))
    for layer in scene.view_layers:
        layer.use_pass_z = True
    scene.render.use_compositing = True
    tree = compositor_tree(scene)
    rlayers = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"), None) \
        or _node(tree, "CompositorNodeRLayers", NODE_RLAYERS, (0, 200))
    rlayers.scene = scene
    img = _node(tree, "CompositorNodeImage", NODE_IMAGE, (0, -200))
    img.image = image
    img.frame_start = frames[0]  # the files are numbered by scene frame: scene frame f reads PREFIX f.exr
    img.frame_offset = frames[0] - 1
    img.frame_duration = frames[-1] - frames[0] + 1
    img.use_cyclic = False
    img.use_auto_refresh = True
    if getattr(img, "has_layers", False) and img.layer != "ViewLayer":
        img.layer = "ViewLayer"
    zc = _node(tree, "CompositorNodeZcombine", NODE_ZCOMBINE, (350, 0))
    if "Use Alpha" in zc.inputs:  # a socket since 5.0, a property before
        zc.inputs["Use Alpha"].default_value = True
    else:
        zc.use_alpha = True
    links = ((_socket(rlayers.outputs, "Image"), zc.inputs[0]), (_socket(rlayers.outputs, "Depth"), zc.inputs[1]),
             (_socket(img.outputs, "Combined", "Image"), zc.inputs[2]), (_socket(img.outputs, "Depth"), zc.inputs[3]))
    for source, target in links:
        tree.links.new(source, target)
    _output(tree, zc.outputs[0])
    return tree


def finish_layer(job: LayerJob, scene_name: str, object_name: str, hide_proxy: bool) -> str:
    """After the job ended: wire the compositor, hide the proxy from the camera; the message for the artist."""
    if job.status != "finished":
        return job.status_line()
    scene, obj = bpy.data.scenes.get(scene_name), bpy.data.objects.get(object_name)
    if scene is None or obj is None:
        job.status, job.message = "failed", "the scene or the sequence object was removed while the layer rendered"
        return job.status_line()
    frames = [entry["frame"] for entry in job.cameras["frames"]]
    try:
        wire_compositor(scene, obj, job.folder, frames)
    except (KeyError, RuntimeError, TypeError) as exc:  # a compositor this Blender lays out differently
        job.status, job.message = "failed", f"the layer is in {job.folder} but the compositor could not be wired: {exc}"
        return job.status_line()
    if hide_proxy:
        obj.visible_camera = False
    return f"GIFStream: compositing layer of {obj.name}: {job.total} frames in {job.folder}, wired into the compositor"
