"""Camera rig conversion, engine (OpenCV w2c + pixel K) -> Blender camera objects. Pure maths + bpy glue."""

from __future__ import annotations

import os

from mathutils import Matrix

from .conventions import blender_camera_from_w2c

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
    import bpy

    if not footage_path or not os.path.exists(footage_path):
        return None
    clip = bpy.data.movieclips.load(footage_path, check_existing=True)
    cam_data.show_background_images = True
    background = cam_data.background_images.new()
    background.source = "MOVIE_CLIP"
    background.clip = clip
    background.alpha = 1.0
    return clip
