"""Blender-side script of the synthetic capture (runs inside Blender's Python, never imported by the engine).

Usage: python synthetic_scene.py SPEC.json  (with the `bpy` module), or blender -b -P synthetic_scene.py -- SPEC.json
SPEC holds the output folder, image size, frame count, fps, samples, denoise, seed and the cameras as OpenCV
camera-to-world matrices with a focal length in pixels. Writes OUT/<camera>/NNNN.png.
"""

import importlib.util
import json
import math
import os
import sys

import bpy
from mathutils import Matrix


def _load_conventions():
    """gifstream_engine/conventions.py (two folders up), loaded by path: this script runs outside the package."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "conventions.py")
    spec = importlib.util.spec_from_file_location("gifstream_conventions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


conventions = _load_conventions()


def reset_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def textured_material(name, kind, color_a, color_b, scale):
    """A procedural material with enough texture for feature matching (checker, brick or noise)."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = 0.8
    coord = nodes.new("ShaderNodeTexCoord")
    if kind == "checker":
        tex = nodes.new("ShaderNodeTexChecker")
    elif kind == "brick":
        tex = nodes.new("ShaderNodeTexBrick")
        tex.inputs["Mortar"].default_value = (0.9, 0.9, 0.85, 1)
    else:
        tex = nodes.new("ShaderNodeTexNoise")
        tex.inputs["Detail"].default_value = 8.0
    tex.inputs["Scale"].default_value = scale
    links.new(coord.outputs["Generated" if kind == "noise" else "UV"], tex.inputs["Vector"])
    if kind == "noise":
        ramp = nodes.new("ShaderNodeValToRGB")
        ramp.color_ramp.elements[0].color = (*color_a, 1)
        ramp.color_ramp.elements[1].color = (*color_b, 1)
        links.new(tex.outputs["Fac"], ramp.inputs["Fac"])
        links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    else:
        tex.inputs["Color1"].default_value = (*color_a, 1)
        tex.inputs["Color2"].default_value = (*color_b, 1)
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def add_object(op, material, **kwargs):
    op(**kwargs)
    obj = bpy.context.active_object
    obj.data.materials.append(material)
    return obj


def build_scene(scene, spec):
    # Static textured background: floor, back wall, side wall and two props.
    add_object(bpy.ops.mesh.primitive_plane_add, textured_material("floor", "checker", (0.8, 0.75, 0.6), (0.15, 0.2, 0.3), 12.0), size=10, location=(0, 0, 0))
    wall = add_object(bpy.ops.mesh.primitive_plane_add, textured_material("wall", "brick", (0.7, 0.25, 0.15), (0.35, 0.1, 0.05), 6.0), size=10, location=(0, 3.0, 2.5))
    wall.rotation_euler = (math.pi / 2, 0, 0)
    side = add_object(bpy.ops.mesh.primitive_plane_add, textured_material("side", "noise", (0.1, 0.4, 0.2), (0.9, 0.9, 0.5), 4.0), size=10, location=(-3.5, 0, 2.5))
    side.rotation_euler = (math.pi / 2, 0, math.pi / 2)
    add_object(bpy.ops.mesh.primitive_cube_add, textured_material("crate", "checker", (0.9, 0.6, 0.1), (0.2, 0.1, 0.05), 4.0), size=0.8, location=(1.4, 1.2, 0.4))
    add_object(bpy.ops.mesh.primitive_cylinder_add, textured_material("pillar", "noise", (0.2, 0.3, 0.8), (0.9, 0.95, 1.0), 6.0), radius=0.3, depth=1.6, location=(-1.5, 1.5, 0.8))

    ball = add_object(bpy.ops.mesh.primitive_uv_sphere_add, textured_material("ball", "checker", (0.95, 0.95, 0.95), (0.8, 0.05, 0.05), 8.0), radius=0.35, location=(0, 0, 0.6))
    cube = add_object(bpy.ops.mesh.primitive_cube_add, textured_material("cube", "checker", (0.1, 0.8, 0.9), (0.05, 0.05, 0.2), 3.0), size=0.5, location=(0, 0, 0.5))
    animate = MOTIONS[spec.get("motion", "orbit")]
    n = spec["num_frames"]
    for f in range(n):
        phase = 2 * math.pi * f / max(n, 1)
        ball.location, ball.rotation_euler, cube.location, cube.rotation_euler = animate(f, n, phase)
        for obj in (ball, cube):
            obj.keyframe_insert("location", frame=f + 1)
            obj.keyframe_insert("rotation_euler", frame=f + 1)
    sun_data = bpy.data.lights.new("sun", type="SUN")
    sun_data.energy = 3.0
    sun = bpy.data.objects.new("sun", sun_data)
    sun.rotation_euler = (math.radians(40), math.radians(15), math.radians(30))
    scene.collection.objects.link(sun)
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.6, 0.7, 0.85, 1)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.8
    scene.world = world


# Each motion maps (frame, frame count, phase 2*pi*f/n) to the ball's and the cube's location and rotation.
def orbit(f, n, phase):
    """Fast motion: the ball circles the centre once per clip; the cube bounces and spins."""
    return ((1.1 * math.cos(phase), 1.1 * math.sin(phase) - 0.2, 0.6 + 0.3 * math.sin(2 * phase)), (0, 0, 2 * phase),
            (-0.2, -0.6, 0.35 + 0.8 * abs(math.sin(3 * phase))), (phase, 2 * phase, 0))


def translate(f, n, phase):
    """Fast translation: the ball crosses the set in a straight line; the cube slides towards the cameras."""
    s = f / max(n - 1, 1)
    return ((-2.0 + 4.0 * s, 0.4, 0.6), (0, 0, 0), (0.6, 0.8 - 1.6 * s, 0.25), (0, 0, 0))


def spin(f, n, phase):
    """Rotation in place: the ball turns twice about a tilted axis, the cube once about the vertical."""
    return ((0.8, -0.2, 0.6), (0.5 * phase, 0, 2 * phase), (-0.6, -0.4, 0.25), (0, 0, phase))


def enter(f, n, phase):
    """An object entering mid-clip: the ball waits behind the side wall, then rolls in from the left from the
    middle frame on; the cube bounces in place throughout."""
    s = max(0.0, (f - n // 2) / max(n - 1 - n // 2, 1))
    x = -5.0 if f < n // 2 else -3.0 + 3.5 * s
    return ((x, 0.2, 0.35), (0, 3.0 * x, 0), (0.3, -0.6, 0.25 + 0.6 * abs(math.sin(2 * phase))), (0, 0, 0))


MOTIONS = {"orbit": orbit, "translate": translate, "spin": spin, "enter": enter}


def add_camera(scene, cam_spec, width):
    data = bpy.data.cameras.new(cam_spec["name"])
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = 36.0
    data.lens = cam_spec["focal_px"] * data.sensor_width / width
    data.clip_start, data.clip_end = 0.05, 100.0
    obj = bpy.data.objects.new(cam_spec["name"], data)
    obj.matrix_world = Matrix(conventions.blender_camera_from_c2w(cam_spec["c2w"]))
    scene.collection.objects.link(obj)
    return obj


def configure_render(scene, spec):
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = spec["samples"]
    scene.cycles.use_denoising = bool(spec["denoise"])
    if scene.cycles.use_denoising:
        scene.cycles.denoiser = "OPENIMAGEDENOISE"
        scene.cycles.denoising_prefilter = "FAST"
        scene.cycles.denoising_quality = "BALANCED"
    scene.cycles.seed = spec["seed"]
    scene.cycles.max_bounces = 4
    scene.render.resolution_x, scene.render.resolution_y = spec["width"], spec["height"]
    scene.render.resolution_percentage = 100
    scene.render.fps = int(spec["fps"])
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.view_settings.view_transform = "Standard"
    scene.frame_start, scene.frame_end = 1, spec["num_frames"]


def main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    scene = reset_scene()
    build_scene(scene, spec)
    configure_render(scene, spec)
    if spec.get("blend_path"):
        bpy.ops.wm.save_as_mainfile(filepath=spec["blend_path"])
    for cam_spec in spec["cameras"]:
        scene.camera = add_camera(scene, cam_spec, spec["width"])
        folder = os.path.join(spec["out"], cam_spec["name"])
        os.makedirs(folder, exist_ok=True)
        scene.render.filepath = os.path.join(folder, "")
        bpy.ops.render.render(animation=True)
        print(f"rendered {cam_spec['name']}", flush=True)


if __name__ == "__main__":
    args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    main(args[0])
