"""Gaussian proxies in Blender: frame-change time and memory, and fidelity against the engine's rasteriser.

python bench/bench_proxy.py [--sizes 100000 500000] [--frames 4] [--fidelity 20000] [--width 160 --height 120]

1. Timeline: per size, a folder of per-frame 3DGS PLYs is imported with the add-on (headless bpy, its own
   process); the time of `scene.frame_set` (the Geometry Nodes tree reads the new frame's PLY and builds the
   quads) on first visits and on revisits, and the process's resident memory after the import, after the first
   frame and after all frames (flat = about one frame held).
2. Fidelity: random Gaussians rendered by the engine (`gifstream_engine.render`, CPU) and by the proxy in
   Cycles and Eevee from the same camera; PSNR of each Blender render against the engine's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from results_io import write_results  # noqa: E402  (bench/, this script's folder, is on sys.path)


# ---- the part that runs inside Blender (this file, started again with --worker) -----------------------------------

def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(spec: dict) -> dict:
    from importlib import import_module

    import bpy

    bpy.ops.extensions.package_install_files(filepath=spec["zip"], repo="user_default", enable_on_install=True)
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    out = {"rss_start": rss_mb()}
    tick = time.perf_counter()
    bpy.ops.import_scene.gifstream_sequence(filepath=spec["folder"], fps=30.0, start_frame=1)
    out["import_s"] = time.perf_counter() - tick
    out["rss_imported"] = rss_mb()
    if "camera" in spec:
        from bl_ext.user_default.gifstream_blender.scene import rig

        cam = spec["camera"]
        data = bpy.data.cameras.new("bench")
        rig.apply_intrinsics(data, cam["K"], cam["width"], cam["height"])
        obj = bpy.data.objects.new("bench", data)
        obj.matrix_world = rig.camera_matrix_world(cam["w2c"])
        scene.collection.objects.link(obj)
        scene.camera = obj
        scene.render.resolution_x, scene.render.resolution_y = cam["width"], cam["height"]
        scene.render.resolution_percentage = 100
        proxy = next(o for o in scene.objects if "GIFStream" in o.modifiers)
        sequence_scene = import_module("bl_ext.user_default.gifstream_blender.scene.sequence_scene")
        sequence_scene.match_scene(proxy.modifiers["GIFStream"], scene)  # what Match Scene does
    first, again, first_cpu = [], [], []
    for visits in (first, again):
        for frame in range(1, spec["frames"] + 1):
            tick, cpu = time.perf_counter(), time.process_time()
            scene.frame_set(frame)
            visits.append(time.perf_counter() - tick)
            if visits is first:
                first_cpu.append(time.process_time() - cpu)
            if visits is first and frame == 1:
                out["rss_one_frame"] = rss_mb()
    out["first_ms"], out["again_ms"] = 1000 * np.median(first[1:] or first), 1000 * np.median(again)
    out["first_cpu_ms"] = 1000 * np.median(first_cpu[1:] or first_cpu)
    out["rss_all_frames"] = rss_mb()
    for engine, path, display_blend in spec.get("renders", []):
        if display_blend:
            blend_in_display_space(bpy.data.materials["GIFStream Gaussian"])
        scene.render.engine = engine
        scene.view_settings.view_transform = "Raw" if display_blend else "Standard"
        scene.world = scene.world or bpy.data.worlds.new("World")
        scene.world.color = (0, 0, 0)
        if scene.world.node_tree is not None:
            scene.world.node_tree.nodes["Background"].inputs["Color"].default_value = (0, 0, 0, 1)
        scene.render.film_transparent = False
        scene.render.image_settings.file_format, scene.render.image_settings.color_mode = "PNG", "RGB"
        scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = "CPU", spec["samples"], False
        scene.cycles.pixel_filter_type = "BOX"
        scene.eevee.taa_render_samples = spec["samples"]
        scene.frame_set(1)
        scene.render.filepath = path
        tick = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        out[os.path.basename(path)] = time.perf_counter() - tick
    return out


def blend_in_display_space(material) -> None:
    """Diagnostic: emit the sRGB-encoded colour and show it raw, so Blender blends encoded values as the engine
    does (the add-on blends scene-linear colours, which is right for compositing with CG)."""
    tree = material.node_tree
    emission = next(n for n in tree.nodes if n.type == "EMISSION")
    link = emission.inputs["Color"].links[0]
    gamma = tree.nodes.new("ShaderNodeGamma")
    gamma.inputs["Gamma"].default_value = 1 / 2.4
    tree.links.new(link.from_socket, gamma.inputs["Color"])
    encode = tree.nodes.new("ShaderNodeVectorMath")
    encode.operation = "MULTIPLY_ADD"
    tree.links.new(gamma.outputs[0], encode.inputs[0])
    encode.inputs[1].default_value = (1.055, 1.055, 1.055)
    encode.inputs[2].default_value = (-0.055, -0.055, -0.055)
    tree.links.new(encode.outputs[0], emission.inputs["Color"])


# ---- the driver ---------------------------------------------------------------------------------------------------

def random_scene(n: int, seed: int) -> dict:
    """Gaussians filling a box 3-6 m in front of the origin along +z (OpenCV camera at the origin)."""
    rng = np.random.default_rng(seed)
    return {"means": rng.uniform([-1.6, -1.2, 3.0], [1.6, 1.2, 6.0], (n, 3)),
            "quats": rng.normal(size=(n, 4)),
            "scales": np.exp(rng.normal(np.log(0.025), 0.5, (n, 3))),
            "opacities": rng.uniform(0.2, 0.95, n),
            "colors": rng.uniform(0.05, 0.95, (n, 3))}


def write_frames(folder: str, n: int, frames: int) -> None:
    from gifstream_engine.plyio import write_gaussian_ply

    os.makedirs(folder, exist_ok=True)
    base = random_scene(n, 0)
    for t in range(frames):
        moved = dict(base, means=base["means"] + [0.05 * t, 0, 0])
        write_gaussian_ply(os.path.join(folder, f"frame_{t:05d}.ply"), **moved)


def run_worker(spec: dict, home: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    proc = subprocess.run([sys.executable, __file__, "--worker", f.name], capture_output=True, text=True,
                          env={**os.environ, "HOME": home})
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 500_000])
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--fidelity", type=int, default=20_000, help="Gaussians in the fidelity scene (0: skip)")
    parser.add_argument("--gifs", default=None, help="compare on frame 0 of this stream from its first camera instead")
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--out", default=None, help="keep the renders here (default: a temporary folder)")
    args = parser.parse_args()

    import build_addon

    work = args.out or tempfile.mkdtemp(prefix="bench_proxy_")
    os.makedirs(work, exist_ok=True)
    zip_path = build_addon.build(os.path.join(work, "dist"))
    home = os.path.join(work, "home")
    rows = []
    if args.sizes:
        print("| Gaussians/frame | PLY MB | import s | frame change, new frame: wall ms (CPU ms) | revisited ms | "
              "RSS MB: imported / 1 frame / all frames |")
        print("|---|---|---|---|---|---|")
    for n in args.sizes:
        folder = os.path.join(work, f"seq_{n}")
        write_frames(folder, n, args.frames)
        r = run_worker({"zip": zip_path, "folder": folder, "frames": args.frames}, home)
        mb = os.path.getsize(os.path.join(folder, "frame_00000.ply")) / 2**20
        print(f"| {n:,} | {mb:.1f} | {r['import_s']:.2f} | {r['first_ms']:.0f} ({r['first_cpu_ms']:.0f}) | {r['again_ms']:.0f} | "
              f"{r['rss_imported']:.0f} / {r['rss_one_frame']:.0f} / {r['rss_all_frames']:.0f} |")
        rows.append({"table": "timeline", "gaussians": n, "frames": args.frames, "ply_mb": mb, "import_s": r["import_s"],
                     "new_frame_wall_ms": r["first_ms"], "new_frame_cpu_ms": r["first_cpu_ms"],
                     "revisited_ms": r["again_ms"], "rss_imported_mb": r["rss_imported"],
                     "rss_one_frame_mb": r["rss_one_frame"], "rss_all_frames_mb": r["rss_all_frames"]})
    if args.fidelity or args.gifs:
        rows += fidelity(args, work, zip_path, home)
    write_results("bench_proxy", rows)


def fidelity(args, work: str, zip_path: str, home: str) -> list[dict]:
    import torch

    from gifstream_engine.capture.camera import Camera
    from gifstream_engine.imageio import read_png, write_png
    from gifstream_engine.plyio import write_gaussian_ply
    from gifstream_engine.render import Gaussians, render

    names = ("means", "quats", "scales", "opacities", "colors")
    if args.gifs:  # a decoded frame, coloured for its first camera (the model's colours depend on the view)
        from gifstream_engine.codec.bitstream import DecodedStream

        stream = DecodedStream(args.gifs, (0, 1))
        camera = stream.cameras[0]
        g = stream.gaussians(0, camera)
        scene = {k: t.numpy() for k, t in zip(names, g.tensors())}
        what = f"frame 0 of {os.path.basename(args.gifs)} ({len(g):,} Gaussians) from {camera.name}"
    else:
        scene = random_scene(args.fidelity, 1)
        f = 0.9 * args.width
        K = np.array([[f, 0, args.width / 2], [0, f, args.height / 2], [0, 0, 1.0]])
        camera = Camera("bench", args.width, args.height, K, np.eye(4))
        g = Gaussians(*(torch.as_tensor(scene[k], dtype=torch.float32) for k in names))
        what = f"{args.fidelity:,} random Gaussians"
    folder = os.path.join(work, "fidelity")
    os.makedirs(folder, exist_ok=True)
    write_gaussian_ply(os.path.join(folder, "frame_00000.ply"), **scene)
    with torch.no_grad():
        rgb = render(g, camera, background=torch.zeros(3)).rgb.clamp(0, 1).numpy()
    engine_png = os.path.join(work, "engine.png")
    write_png(engine_png, (rgb * 255 + 0.5).astype(np.uint8))
    renders = [("CYCLES", os.path.join(work, "cycles.png"), False), ("BLENDER_EEVEE", os.path.join(work, "eevee.png"), False),
               ("CYCLES", os.path.join(work, "cycles_display_blend.png"), True)]
    cam = {"K": camera.K.tolist(), "w2c": camera.w2c.tolist(), "width": camera.width, "height": camera.height}
    r = run_worker({"zip": zip_path, "folder": folder, "frames": 1, "camera": cam, "renders": renders,
                    "samples": args.samples}, home)
    engine = read_png(engine_png)
    images = [engine]
    rows = []
    print(f"\nFidelity: {what}, {camera.width}x{camera.height}, {args.samples} samples")
    print("| Blender engine | PSNR vs engine rasteriser (dB) | render s |")
    print("|---|---|---|")
    for name, path, display_blend in renders:
        img = read_png(path)[..., :3]
        label = f"{name}, blending sRGB-encoded colours (diagnostic)" if display_blend else name
        if not display_blend:
            images.append(img)
        print(f"| {label} | {psnr(img, engine):.2f} | {r[os.path.basename(path)]:.1f} |")
        rows.append({"table": "fidelity", "scene": what, "width": camera.width, "height": camera.height,
                     "samples": args.samples, "engine": name, "display_blend_diagnostic": display_blend,
                     "psnr_vs_engine": psnr(img, engine), "render_s": r[os.path.basename(path)]})
    side = os.path.join(work, "proxy_vs_engine.png")
    write_png(side, np.concatenate(images, axis=1))
    print(f"engine | Cycles | Eevee: {side}")
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        with open(sys.argv[2]) as fh:
            print(json.dumps(worker(json.load(fh))))
    else:
        main()
