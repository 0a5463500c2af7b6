"""Gaussian proxies in Blender: frame-change time and memory, and fidelity against the engine and the footage.

python bench/bench_proxy.py [--sizes 100000 500000] [--frames 16] [--repeats 3] [--eevee] [--allocator both]
                            [--stream X.gifs --capture CAPTURE [--samples 64]] [--out DIR] [--addon-zip ZIP]

1. Timeline: per size, a folder of per-frame 3DGS PLYs is imported with the add-on (headless bpy, its own
   process); the time of `scene.frame_set` (the Geometry Nodes tree reads the new frame's PLY and builds the
   quads) on first visits, as playback meets them, and on revisits (Blender keeps recently read PLYs), the
   process's resident memory after the import, after the first frame and after all frames (Blender's import cache
   holds the frames visited), and the load average while it ran. A new frame's time is the median (and 90th
   percentile) over frames 2..--frames of the first visits; frame 1 (the tree's first evaluation) is left out.
   `--repeats` runs each size that many times (fresh processes) and keeps the median. `--allocator` times with the
   add-on's "Reuse Memory During Playback" preference on (its default), off, or both (core/playback_memory.py).
   With --eevee,
   also an Eevee render (64x48, 1 sample) of each new frame after the first: the frame change plus what a renderer
   does with the proxy (Eevee's sync and drawing of every quad), the first render (shader compilation) left out.
   `--addon-zip` times another build of the add-on (e.g. an older commit's, built with build_addon.py).
2. Fidelity (with --stream and --capture): as a new user would, a new scene (AgX), the capture imported, the
   stream imported (decoded by the engine); the proxy rendered from the capture's test camera at the stream's first
   frame in Cycles (--samples, default 64) and Eevee (its default samples), Blender's default pixel filters. PSNR of
   each against the footage and against the engine's rasteriser on the same Gaussians, camera and frame (all of
   them, and culled to the camera as `gifstream render` does). A diagnostic Cycles render blends sRGB-encoded
   colours, as the engine does (the add-on blends scene-linear light, which compositing with CG needs): the share
   of the gap that blending accounts for. The picture (footage | engine | Cycles | Eevee | Cycles under AgX, 2x) is
   written to OUT/proxy_vs_engine.png.
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

ADDON = "bl_ext.user_default.gifstream_blender"
EEVEE_FRAMES = 4  # frames rendered with --eevee (5-15 s each here)
ALLOCATOR = {"on": (True,), "off": (False,), "both": (False, True)}  # --allocator: keep_freed_memory values timed


# ---- the part that runs inside Blender (this file, started again with --worker) -----------------------------------

def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def install_clean(spec: dict) -> None:
    import bpy

    bpy.ops.extensions.package_install_files(filepath=spec["zip"], repo="user_default", enable_on_install=True)
    for obj in list(bpy.data.objects):  # the startup cube, light and camera
        bpy.data.objects.remove(obj)


def timeline_worker(spec: dict) -> dict:
    import bpy

    install_clean(spec)
    prefs = bpy.context.preferences.addons[ADDON].preferences
    if hasattr(prefs, "keep_freed_memory"):  # an older build (--addon-zip) has no such preference
        prefs.keep_freed_memory = spec["keep_freed_memory"]
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    out = {"rss_start": rss_mb()}
    tick = time.perf_counter()
    bpy.ops.import_scene.gifstream_sequence(filepath=spec["folder"], fps=30.0, start_frame=1)
    out["import_s"] = time.perf_counter() - tick
    out["rss_imported"] = rss_mb()
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
    out["first_p90_ms"] = 1000 * np.percentile(first[1:] or first, 90)
    out["first_cpu_ms"] = 1000 * np.median(first_cpu[1:] or first_cpu)
    out["rss_all_frames"] = rss_mb()
    if spec.get("eevee"):
        out["eevee_frame_ms"] = eevee_frames(scene, min(spec["frames"], EEVEE_FRAMES))
    return out


def eevee_frames(scene, frames: int) -> float:
    """Median wall ms of frame change + Eevee render (64x48, 1 sample), frames 2.. after a first render at frame 1."""
    import bpy

    camera = bpy.data.objects.new("bench camera", bpy.data.cameras.new("bench camera"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, 0.0, 0.0), (np.pi, 0.0, 0.0)  # looking along +z at the Gaussians
    scene.camera = camera
    scene.render.engine = "BLENDER_EEVEE"
    scene.eevee.taa_render_samples = 1
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 64, 48, 100
    times = []
    for frame in range(1, frames + 1):
        tick = time.perf_counter()
        scene.frame_set(frame)
        bpy.ops.render.render()
        times.append(time.perf_counter() - tick)
    return 1000 * float(np.median(times[1:]))


def fidelity_worker(spec: dict) -> dict:
    import bpy

    scene = bpy.context.scene
    out = {"view_before": scene.view_settings.view_transform}
    install_clean(spec)
    bpy.ops.import_scene.gifstream_capture(filepath=spec["capture"])
    bpy.ops.import_scene.gifstream_sequence(filepath=spec["stream"], cache_dir=spec["cache"])
    out["view_after"], out["camera"] = scene.view_settings.view_transform, scene.camera.name
    scene.frame_set(scene.frame_start)
    scene.cycles.device = "CPU"
    for name, engine, diagnostic in (("cycles", "CYCLES", False), ("eevee", "BLENDER_EEVEE", False),
                                     ("cycles_display_blend", "CYCLES", True)):
        scene.render.engine = engine
        scene.cycles.samples = spec["samples"]
        if diagnostic:
            blend_in_display_space(bpy.data.materials["GIFStream Gaussian"])
            scene.view_settings.view_transform = "Raw"
        scene.render.filepath = os.path.join(spec["work"], f"{name}.png")
        tick = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        out[f"{name}_s"] = time.perf_counter() - tick
        if name == "cycles":  # the same render shown through Blender's default view transform
            scene.view_settings.view_transform = "AgX"
            bpy.data.images["Render Result"].save_render(os.path.join(spec["work"], "cycles_agx.png"), scene=scene)
            scene.view_settings.view_transform = "Standard"
    return out


def blend_in_display_space(material) -> None:
    """Diagnostic: emit the display (sRGB-encoded) colour and show it raw, so Blender blends encoded values as the
    engine does (the add-on blends scene-linear colours, which is right for compositing with CG)."""
    tree = material.node_tree
    emission = next(n for n in tree.nodes if n.type == "EMISSION")
    encoded = [n for n in tree.nodes if n.bl_idname == "ShaderNodeMath" and n.operation == "MULTIPLY_ADD" and n.use_clamp]
    display = tree.nodes.new("ShaderNodeCombineXYZ")
    for axis, node in zip("XYZ", sorted(encoded, key=lambda n: n.inputs[0].links[0].from_node.attribute_name)):
        tree.links.new(node.outputs[0], display.inputs[axis])
    tree.links.new(display.outputs[0], emission.inputs["Color"])


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


def run_worker(kind: str, spec: dict, home: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    env = {**os.environ, "HOME": home, "GIFSTREAM_ENGINE_PYTHON": sys.executable}
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, f.name], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 500_000])
    parser.add_argument("--frames", type=int, default=16, help="frames of the timeline (distinct PLYs)")
    parser.add_argument("--allocator", choices=sorted(ALLOCATOR), default="on",
                        help="time with the add-on's Reuse Memory During Playback on, off or both")
    parser.add_argument("--repeats", type=int, default=3, help="timeline runs per size (fresh processes); the median")
    parser.add_argument("--stream", default=None, help="a trained .gifs for the fidelity table")
    parser.add_argument("--capture", default=None, help="the capture it was trained on")
    parser.add_argument("--samples", type=int, default=64, help="Cycles samples (Eevee keeps its default)")
    parser.add_argument("--out", default=None, help="keep the renders here (default: a temporary folder)")
    parser.add_argument("--eevee", action="store_true", help="also time frame change + Eevee render of each new frame")
    parser.add_argument("--addon-zip", default=None, help="time this build of the add-on instead of the working tree's")
    args = parser.parse_args()
    if bool(args.stream) != bool(args.capture):
        parser.error("--stream and --capture go together")

    import build_addon

    work = os.path.abspath(args.out or tempfile.mkdtemp(prefix="bench_proxy_"))
    os.makedirs(work, exist_ok=True)
    zip_path = os.path.abspath(args.addon_zip) if args.addon_zip else build_addon.build(os.path.join(work, "dist"))
    home = os.path.join(work, "home")
    rows = [timeline(args, work, zip_path, home, n, keep) for n in args.sizes for keep in ALLOCATOR[args.allocator]]
    if args.stream:
        rows += fidelity(args, work, zip_path, home)
    write_results("bench_proxy", rows)


def timeline(args, work: str, zip_path: str, home: str, n: int, keep_freed_memory: bool) -> dict:
    if n == args.sizes[0] and keep_freed_memory == ALLOCATOR[args.allocator][0]:
        print("| Gaussians/frame | reuse memory | PLY MB | import s | new frame: wall ms (CPU ms), p90 | revisited ms | "
              "RSS MB: imported / 1 frame / all frames | frame change + Eevee render ms | load average |")
        print("|---|---|---|---|---|---|---|---|---|")
    folder = os.path.join(work, f"seq_{n}")
    if not os.path.exists(os.path.join(folder, f"frame_{args.frames - 1:05d}.ply")):
        write_frames(folder, n, args.frames)
    runs, loads = [], []
    for _ in range(args.repeats):
        loads.append(os.getloadavg()[0])
        spec = {"zip": zip_path, "folder": folder, "frames": args.frames, "eevee": args.eevee,
                "keep_freed_memory": keep_freed_memory}
        runs.append(run_worker("timeline", spec, home))
    r = {key: float(np.median([run[key] for run in runs])) for key in runs[0]}
    load = float(np.median(loads))
    mb = os.path.getsize(os.path.join(folder, "frame_00000.ply")) / 2**20
    eevee = f"{r['eevee_frame_ms']:.0f}" if args.eevee else ""
    print(f"| {n:,} | {'on' if keep_freed_memory else 'off'} | {mb:.1f} | {r['import_s']:.2f} | "
          f"{r['first_ms']:.0f} ({r['first_cpu_ms']:.0f}), {r['first_p90_ms']:.0f} | {r['again_ms']:.0f} | "
          f"{r['rss_imported']:.0f} / {r['rss_one_frame']:.0f} / {r['rss_all_frames']:.0f} | {eevee} | {load:.1f} |")
    return {"table": "timeline", "gaussians": n, "frames": args.frames, "repeats": args.repeats, "ply_mb": mb,
            "addon_zip": args.addon_zip, "keep_freed_memory": keep_freed_memory,
            "eevee_frame_ms": r.get("eevee_frame_ms"), "new_frame_p90_ms": r["first_p90_ms"],
            "import_s": r["import_s"], "new_frame_wall_ms": r["first_ms"], "new_frame_cpu_ms": r["first_cpu_ms"],
            "new_frame_wall_ms_runs": [run["first_ms"] for run in runs], "revisited_ms": r["again_ms"],
            "rss_imported_mb": r["rss_imported"], "rss_one_frame_mb": r["rss_one_frame"],
            "rss_all_frames_mb": r["rss_all_frames"], "load_average_1min": load}


def fidelity(args, work: str, zip_path: str, home: str) -> list[dict]:
    import torch

    from gifstream_engine.capture import load_capture
    from gifstream_engine.imageio import read_png, write_png
    from gifstream_engine.render import render
    from gifstream_engine.sequence import PlySequence

    cache = os.path.join(work, "fidelity_cache")
    r = run_worker("fidelity", {"zip": zip_path, "capture": os.path.abspath(args.capture), "work": work,
                                "stream": os.path.abspath(args.stream), "cache": cache, "samples": args.samples}, home)
    capture = load_capture(args.capture)
    index = [c.name for c in capture.cameras].index(r["camera"])
    camera, footage = capture.cameras[index], capture.frames(index)[0][..., :3]
    frames = PlySequence(cache)
    engines = {}
    with torch.no_grad():
        for label, gaussians in (("every Gaussian", frames.gaussians(0)), ("culled", frames.gaussians(0, camera))):
            rgb = render(gaussians, camera, background=torch.zeros(3)).rgb.clamp(0, 1).numpy()
            engines[label] = (rgb * 255 + 0.5).astype(np.uint8)
    engine = engines["every Gaussian"]
    what = f"frame 0 of {os.path.basename(args.stream)} ({len(frames.gaussians(0)):,} Gaussians) from {camera.name}"
    print(f"\nFidelity: {what}, {camera.width}x{camera.height}; view {r['view_before']} -> {r['view_after']} by the imports")
    print("| render | PSNR vs footage (dB) | PSNR vs engine (dB) | gap to the engine vs footage (dB) | render s |")
    print("|---|---|---|---|---|")
    base = psnr(engine, footage)
    renders = {"cycles": f"Cycles, {args.samples} samples", "eevee": "Eevee, default samples",
               "cycles_display_blend": f"Cycles, {args.samples} samples, blending sRGB-encoded colours (diagnostic)",
               "cycles_agx": f"Cycles, {args.samples} samples, shown under AgX"}
    images = {"engine": engine, "engine_culled": engines["culled"]}
    labels = {"engine": "engine rasteriser, every Gaussian of the frame",
              "engine_culled": "engine rasteriser culled to the camera (gifstream render)", **renders}
    images.update({name: read_png(os.path.join(work, f"{name}.png"))[..., :3] for name in renders})
    rows = []
    for name, img in images.items():
        vs_footage, vs_engine = psnr(img, footage), (psnr(img, engine) if name != "engine" else float("inf"))
        seconds = r.get(f"{name}_s")
        print(f"| {labels[name]} | {vs_footage:.2f} | {vs_engine:.2f} | {base - vs_footage:+.2f} | "
              f"{'' if seconds is None else f'{seconds:.1f}'} |")
        rows.append({"table": "fidelity", "frame": what, "width": camera.width, "height": camera.height,
                     "render": labels[name], "psnr_vs_footage": vs_footage, "psnr_vs_engine": vs_engine,
                     "gap_db": base - vs_footage, "render_s": seconds})
    picture = np.concatenate([footage] + [images[name] for name in ("engine", "cycles", "eevee", "cycles_agx")], axis=1)
    side = os.path.join(work, "proxy_vs_engine.png")
    write_png(side, picture.repeat(2, axis=0).repeat(2, axis=1))  # shown 2x
    print(f"footage | engine | Cycles | Eevee | Cycles under AgX: {side}")
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        with open(sys.argv[3]) as fh:
            spec = json.load(fh)
        print(json.dumps((timeline_worker if sys.argv[2] == "timeline" else fidelity_worker)(spec)))
    else:
        main()
