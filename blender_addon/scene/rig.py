"""Camera rig conversion, engine (OpenCV w2c + pixel K) <-> Blender camera objects, and a capture's rig built as
a collection of cameras with their footage. Pure maths + bpy glue."""

from __future__ import annotations

import os

import bpy
from mathutils import Matrix

from ..core import engine_client
from ..core.conventions import blender_camera_from_w2c, w2c_from_blender_camera

SENSOR_MM = 36.0


def camera_matrix_world(w2c) -> Matrix:
    """Blender object matrix of a camera from an OpenCV world-to-camera 4x4 (list of rows)."""
    return Matrix(blender_camera_from_w2c(w2c))


def apply_intrinsics(cam_data, K, width: int, height: int) -> None:
    """Focal length, sensor fit and principal point (as lens shift) of a pixel K on a Blender camera."""
    fx, fy, cx, cy = K[0][0], K[1][1], K[0][2], K[1][2]
    cam_data.sensor_width = SENSOR_MM
    cam_data.sensor_height = SENSOR_MM
    if width >= height:
        cam_data.sensor_fit = "HORIZONTAL"
        cam_data.lens = fx * SENSOR_MM / width
    else:
        cam_data.sensor_fit = "VERTICAL"
        cam_data.lens = fy * SENSOR_MM / height
    size = max(width, height)
    cam_data.shift_x = (width / 2 - cx) / size
    cam_data.shift_y = (cy - height / 2) / size


def attach_footage(cam_data, footage_path):
    """Show the camera's footage as its background (a movie clip); returns the clip or None."""
    if not footage_path or not os.path.exists(footage_path):
        return None
    clip = bpy.data.movieclips.load(footage_path, check_existing=True)
    cam_data.show_background_images = True
    background = cam_data.background_images.new()
    background.source = "MOVIE_CLIP"
    background.clip = clip
    background.alpha = 1.0
    return clip


def camera_w2c(matrix_world) -> Matrix:
    """OpenCV world-to-camera of a Blender camera object (the inverse of `camera_matrix_world`); the object's
    scale is dropped, as Blender's renderer drops it."""
    location, rotation, _ = matrix_world.decompose()
    return Matrix(w2c_from_blender_camera(Matrix.LocRotScale(location, rotation, None)))


def camera_intrinsics(cam_data, width: int, height: int, pixel_aspect_x: float = 1.0, pixel_aspect_y: float = 1.0):
    """Pixel K (rows) of a perspective Blender camera rendering width x height pixels, as Blender's viewplane
    computes it (sensor fit, focal length, lens shift in units of the fitted side, non-square pixels); the inverse
    of `apply_intrinsics` for square pixels."""
    if cam_data.type != "PERSP":
        kind = {"ORTHO": "orthographic", "PANO": "panoramic"}.get(cam_data.type, cam_data.type.lower())
        raise ValueError(f"camera {cam_data.name!r} is {kind}; the engine renders perspective cameras only")
    ycor = pixel_aspect_y / pixel_aspect_x
    fit = cam_data.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if pixel_aspect_x * width >= pixel_aspect_y * height else "VERTICAL"
        sensor = cam_data.sensor_width
    else:
        sensor = cam_data.sensor_width if fit == "HORIZONTAL" else cam_data.sensor_height
    viewfac = width if fit == "HORIZONTAL" else ycor * height
    fx = cam_data.lens * viewfac / sensor
    fy = fx / ycor
    cx = width / 2 - cam_data.shift_x * viewfac
    cy = height / 2 + cam_data.shift_y * viewfac / ycor
    return [[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]


def capture_root(path: str) -> str:
    """The capture folder of a path the artist chose: the folder itself, a file's folder, or the root two levels
    above a file chosen inside sparse/0 (COLMAP)."""
    root = path if os.path.isdir(path) else os.path.dirname(path)
    if os.path.basename(root) == "0" and os.path.basename(os.path.dirname(root)) == "sparse":
        root = os.path.dirname(os.path.dirname(root))
    return root


def import_capture(context, python: str, path: str):
    """The engine reads the capture at `path` (`EngineError` if it cannot); its rig becomes a camera collection.
    Returns (collection, cameras, the engine's rig description)."""
    root = capture_root(path)
    info = engine_client.capture_info(python, root)
    collection, cameras = build_rig(context, info, os.path.basename(os.path.normpath(root)) or "capture")
    return collection, cameras, info


def build_rig(context, info: dict, name: str):
    """Create a collection of cameras for the rig description `info` and set up the scene from it."""
    scene = context.scene
    collection = bpy.data.collections.new(name)
    scene.collection.children.link(collection)
    first = info["cameras"][0]
    scene.render.resolution_x, scene.render.resolution_y = first["width"], first["height"]
    scene.render.resolution_percentage = 100
    fps = float(info["fps"])
    scene.render.fps = max(1, round(fps))
    scene.render.fps_base = scene.render.fps / fps
    scene.frame_start, scene.frame_end = 1, int(info["num_frames"])
    cameras = []
    for cam in info["cameras"]:
        data = bpy.data.cameras.new(cam["name"])
        apply_intrinsics(data, cam["K"], cam["width"], cam["height"])
        data.clip_start, data.clip_end = 0.01, 1000.0
        obj = bpy.data.objects.new(cam["name"], data)
        obj.matrix_world = camera_matrix_world(cam["w2c"])
        obj["gifstream_split"] = cam["split"]
        obj["gifstream_size"] = (cam["width"], cam["height"])
        collection.objects.link(obj)
        clip = attach_footage(data, cam.get("footage"))
        if clip is not None:
            clip.frame_start = 1
        cameras.append(obj)
    collection["gifstream_capture"] = info.get("root", "")
    collection["gifstream_format"] = info["format"]
    scene.camera = next((c for c in cameras if c["gifstream_split"] == "test"), cameras[0])
    return collection, cameras
