"""Helpers shared by the Blender-side test scripts (imported from their folder, which Python puts first on sys.path
when a script runs)."""

import bpy
from mathutils import Matrix

CV_TO_BLENDER_CAMERA = Matrix(((1, 0, 0, 0), (0, -1, 0, 0), (0, 0, -1, 0), (0, 0, 0, 1)))


def call(op, **kwargs):
    """(sorted result set, error text) of an operator call."""
    try:
        return sorted(op(**kwargs)), ""
    except RuntimeError as exc:  # an operator reporting an ERROR raises when called from Python
        return ["CANCELLED"], str(exc)


def set_camera(cam, name):
    """A scene camera named `name` from an engine camera (K, w2c in OpenCV, width, height), with the resolution."""
    scene = bpy.context.scene
    data = bpy.data.cameras.new(name)
    obj = bpy.data.objects.new(name, data)
    scene.collection.objects.link(obj)
    fx, cx, cy = cam["K"][0][0], cam["K"][0][2], cam["K"][1][2]
    w, h = cam["width"], cam["height"]
    data.sensor_fit, data.sensor_width = "HORIZONTAL", 36.0
    data.lens = fx * 36.0 / w
    data.shift_x, data.shift_y = (w / 2 - cx) / max(w, h), (cy - h / 2) / max(w, h)
    obj.matrix_world = Matrix(cam["w2c"]).inverted() @ CV_TO_BLENDER_CAMERA
    scene.camera = obj
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = w, h, 100
