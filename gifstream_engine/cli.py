"""`gifstream <command>`: the engine's one command-line entry point."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
import traceback

import numpy as np

from . import __version__
from .errors import GIFStreamError
from .fileio import output_dir, output_file

EXIT_USER_ERROR = 2  # bad input, options or environment: the message says what to change
EXIT_INTERNAL_ERROR = 70  # a bug (EX_SOFTWARE): the message names the crash log that holds the traceback
EXIT_INTERRUPTED = 130
CRASH_DIR_ENV = "GIFSTREAM_CRASH_DIR"


def _capture_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="capture folder (N3DV/LLFF, Panoptic, COLMAP or transforms.json layout)")
    p.add_argument("--downscale", type=float, default=1.0, help="image downscale factor (>= 1)")
    p.add_argument("--frames", default=None, help="frame range START:STOP (default: all)")


def _load(args):
    from .capture import load_capture, parse_frame_range

    return load_capture(args.path, downscale=args.downscale, frames=parse_frame_range(args.frames))


def rig_table(info: dict) -> str:
    lines = [f"{info['format']} capture: {len(info['cameras'])} cameras, {info['num_frames']} frames at {info['fps']:g} fps",
             f"{'camera':<10}{'split':<7}{'size':>11}{'fx':>9}{'fy':>9}{'centre (world)':>28}"]
    for cam in info["cameras"]:
        centre = -np.asarray(cam["w2c"])[:3, :3].T @ np.asarray(cam["w2c"])[:3, 3]
        size = f"{cam['width']}x{cam['height']}"
        lines.append(f"{cam['name']:<10}{cam['split']:<7}{size:>11}{cam['K'][0][0]:9.1f}{cam['K'][1][1]:9.1f}"
                     f"   ({centre[0]:7.2f}, {centre[1]:7.2f}, {centre[2]:7.2f})")
    lo, hi = info["scene_bounds"]
    lines.append(f"scene bounds: ({lo[0]:.2f}, {lo[1]:.2f}, {lo[2]:.2f}) .. ({hi[0]:.2f}, {hi[1]:.2f}, {hi[2]:.2f})")
    return "\n".join(lines)


def cmd_capture_info(args) -> None:
    info = _load(args).info()
    print(json.dumps(info) if args.json else rig_table(info))


def _synth_config(args):
    from .capture.synth import SynthConfig

    return SynthConfig(num_cameras=args.cameras, num_frames=args.num_frames, width=args.width,
                       height=args.height, samples=args.samples, fps=args.fps, seed=args.seed, motion=args.motion)


def cmd_capture_synth(args) -> None:
    from .capture.synth import render_synthetic_capture

    output_dir(args.out, "capture folder")
    start = time.time()
    render_synthetic_capture(args.out, _synth_config(args), python=args.blender_python)
    print(f"wrote {args.out} in {time.time() - start:.1f} s")


def cmd_capture_points(args) -> None:
    from .capture.sfm_init import initial_point_cloud
    from .plyio import write_point_ply

    output_file(args.out, "point cloud")
    cloud = initial_point_cloud(_load(args), use_capture_points=not args.sfm)
    write_point_ply(args.out, cloud.points, cloud.colors)
    print(f"{len(cloud.points)} points ({cloud.source}) -> {args.out} {cloud.stats or ''}")


def cmd_demo(args) -> None:
    """Render the embedded capture, load it, seed points, render them from the test camera, print the rig."""
    import torch

    from .capture import load_capture
    from .capture.sfm_init import initial_point_cloud
    from .capture.synth import render_synthetic_capture
    from .imageio import write_png
    from .plyio import write_point_ply
    from .render import gaussians_from_points, render

    capture_dir = os.path.join(args.out, "capture")
    if not os.path.isfile(os.path.join(capture_dir, "poses_bounds.npy")):
        start = time.time()
        render_synthetic_capture(capture_dir, _synth_config(args), python=args.blender_python)
        print(f"[1/6] rendered the synthetic capture in {time.time() - start:.1f} s -> {capture_dir}")
    else:
        print(f"[1/6] reusing the synthetic capture in {capture_dir}")
    capture = load_capture(capture_dir)
    print("[2/6] loaded the capture\n" + rig_table(capture.info()))
    start = time.time()
    cloud = initial_point_cloud(capture)
    write_point_ply(os.path.join(args.out, "init_points.ply"), cloud.points, cloud.colors)
    print(f"[3/6] initial point cloud: {len(cloud.points)} points from {cloud.source} in {time.time() - start:.1f} s {cloud.stats}")
    test = capture.split_indices("test")[0]
    camera = capture.cameras[test]
    gaussians = gaussians_from_points(cloud.points, cloud.colors)
    start = time.time()
    with torch.no_grad():
        out = render(gaussians, camera, background=torch.zeros(3))
    seconds = time.time() - start
    image = out.rgb.numpy()
    truth = capture.frame(test, 0)
    side_by_side = np.concatenate([truth, image], axis=1)
    path = os.path.join(args.out, f"init_points_{camera.name}.png")
    write_png(path, side_by_side)
    print(f"[4/6] rendered {len(gaussians)} Gaussians from test camera {camera.name} with the "
          f"{out.meta.backend} backend in {seconds * 1000:.0f} ms: footage | points -> {path}")
    with open(os.path.join(args.out, "rig.json"), "w") as f:
        json.dump(capture.info(), f, indent=1)
    if args.no_train:
        return
    from .events import EventWriter
    from .train.config import load_config

    run_dir = os.path.join(args.out, "run")
    cfg = load_config(["preview"], [f"train.steps={args.steps}"] if args.steps else [])
    print(f"[5/6] training the preview preset ({cfg.train.steps} steps) -> {run_dir}")
    if train_and_evaluate(capture, cfg, run_dir, EventWriter(enabled=False), print, resume=True,
                          progress_bar=sys.stderr.isatty()) is None:
        return
    from .codec.bitstream import DecodedStream, encode_run
    from .codec.describe import bitrate_mbps
    from .eval.evaluate import evaluate, load_run
    from .eval.strip import motion_strip, strip_frames

    run = load_run(run_dir)
    strip_path = os.path.join(args.out, "motion_strip.png")
    write_png(strip_path, motion_strip(run, capture, test, strip_frames(run.num_frames)))
    print(f"      footage | render | error x4 of {camera.name} at frames {strip_frames(run.num_frames)} -> {strip_path}")
    stream_path = os.path.join(args.out, "run.gifs")
    encoded = encode_run(run, stream_path, run.rig)
    stream = DecodedStream(stream_path)
    result = evaluate(stream, capture)
    mbps = bitrate_mbps(encoded["bytes"], stream.num_frames, stream.fps)
    print(f"[6/6] encoded {encoded['bytes'] / 1024:.1f} KB ({mbps:.3f} Mbps) -> {stream_path}; decoded from the "
          f"bitstream: test PSNR {result['test_psnr']:.2f} dB, SSIM {result['test_ssim']:.4f}, "
          f"{stream.decode_fps():.0f} frames/s decode")


def motion_summary(result: dict) -> str:
    if result.get("dynamic_psnr") is None:
        return "no moving pixels in the test footage"
    return (f"moving pixels {result['dynamic_psnr']:.2f} dB (frozen background {result['frozen_psnr']:.2f} dB, "
            f"{result['moving_fraction'] * 100:.0f}% of pixels)")


def train_and_evaluate(capture, cfg, out: str, events, log, resume: bool, overwrite: bool = False,
                       progress_bar: bool = False, parallel=None) -> dict | None:
    """Train every GOP into `out` (here, or on Ray when `parallel` holds ParallelOptions), then evaluate on the
    test cameras (None when training was cancelled)."""
    from .train.trainer import Training

    if parallel is not None:
        from .scale.ray_backend import train_parallel

        status = train_parallel(capture, cfg, out, parallel, events, log, resume=resume, overwrite=overwrite).status
    else:
        status = Training(capture, cfg, out, events, log, progress_bar).run(resume=resume, overwrite=overwrite)
    return evaluate_and_report(capture, out, log) if status == "finished" else None


def evaluate_and_report(capture, out: str, log) -> dict:
    """Evaluate a trained run on the test cameras, write RUN/eval.json and log the summary."""
    from .eval.evaluate import evaluate_run, load_run, write_eval

    log("evaluating on the test cameras")
    run = load_run(out)
    result = evaluate_run(run, capture)
    write_eval(run, result)
    log(f"test PSNR {result['test_psnr']:.2f} dB, SSIM {result['test_ssim']:.4f}, train PSNR {result['train_psnr']:.2f} dB, "
        f"{motion_summary(result)}, {result['num_anchors']} anchors ({result['dynamic_fraction'] * 100:.1f}% with a feature stream), "
        f"{result['train_seconds']:.0f} s training, render {result['render_fps']:.1f} fps")
    return result


def _train_overrides(args) -> list[str]:
    """--set values plus the shortcuts (--steps, --device, --no-stream)."""
    overrides = list(args.set or [])
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if args.device is not None:
        overrides.append(f"train.device={args.device}")
    if args.no_stream:
        overrides.append("train.disable_stream=true")
    return overrides


def cmd_train(args) -> None:
    from .capture import load_capture
    from .events import EventWriter
    from .train.config import load_config

    overrides = _train_overrides(args)
    if args.resume and args.overwrite:
        raise GIFStreamError("--resume continues the run in the folder and --overwrite replaces it: give one of them")
    saved = os.path.join(args.out, "config.json")
    if args.resume and os.path.isfile(saved) and not (args.preset or overrides):
        from .train.config import RunConfig
        from .train.run_folder import read_saved

        cfg = RunConfig.from_dict(read_saved(args.out)["config"], saved)  # a plain --resume continues with the run's settings
    else:
        cfg = load_config(args.preset or ["preview"], overrides)
    output_dir(args.out, "run folder")
    events = EventWriter(enabled=args.events)
    log = (lambda msg: events.log(msg)) if args.events else print
    if args.gop is not None:  # one GOP of a run (a farm task): no evaluation, that is `gifstream assemble`'s
        from .scale.gop_job import train_gop_of_run

        if args.workers:
            raise GIFStreamError("--gop N trains one GOP in this process; it cannot be combined with --workers")
        given = cfg if (args.preset or overrides or args.gop == 0) else None
        outcome = train_gop_of_run(args.capture, args.out, args.gop, given, args.resume, args.overwrite, args.threads,
                                   events, log, progress_bar=sys.stderr.isatty() and not args.events)
        if outcome.status == "cancelled":
            raise KeyboardInterrupt
        events.result({"status": "finished", "run": args.out, "gop": args.gop, "seconds": outcome.seconds})
        return
    parallel = None
    if args.workers:
        from .scale.ray_backend import ParallelOptions

        parallel = ParallelOptions(args.workers, args.threads or 1, args.retries)
    elif args.threads:
        import torch

        torch.set_num_threads(args.threads)
    capture = load_capture(args.capture, downscale=cfg.train.downscale)
    result = train_and_evaluate(capture, cfg, args.out, events, log, resume=args.resume, overwrite=args.overwrite,
                                progress_bar=sys.stderr.isatty() and not args.events, parallel=parallel)
    if result is not None:
        events.result({"status": "finished", "run": args.out, "eval": result})


def cmd_assemble(args) -> None:
    from .capture import load_capture
    from .scale.assemble import check_complete
    from .scale.gop_job import saved_config
    from .train.run_folder import read_saved

    gops = check_complete(args.run)
    capture = load_capture(args.capture or read_saved(args.run)["capture"], downscale=saved_config(args.run).train.downscale)
    print(f"{args.run}: all {gops} GOPs trained")
    evaluate_and_report(capture, args.run, print)
    if args.output:
        encode_to(args.run, args.output, as_json=False)


def cmd_farm_job(args) -> None:
    from .capture import load_capture
    from .scale.farm_job import missing_defaults, write_farm_job
    from .train.config import load_config

    presets = [os.path.abspath(p) if os.path.isfile(p) else p for p in args.preset or ["preview"]]  # TOML files by path
    cfg = load_config(presets, _train_overrides(args))
    capture = load_capture(args.capture, downscale=cfg.train.downscale)
    output_file(args.output, "job template")
    job = write_farm_job(args.output, capture, os.path.abspath(args.capture), os.path.abspath(args.out), presets,
                         _train_overrides(args), cfg, command=args.command)
    params = "".join(f" -p {name}={path}" for name, path in missing_defaults(job.template).items())
    print(f"{args.output}: OpenJD job, {job.num_gops} GOPs ({job.gop_tasks} tasks after GOP 0) -> {args.out}; "
          f"check it with `openjd check {args.output}`, run it locally with "
          f"`openjd run --step Assemble --run-dependencies{params} {args.output}`")


def is_bitstream(path: str) -> bool:
    return os.path.isfile(path)


def open_sequence(path: str, frames_text: str | None):
    """(sequence, start, stop): a trained run folder or a .gifs bitstream, and the frames asked for (default:
    all). A bitstream decodes only up to `stop`; its frame count comes from the header, before any decoding."""
    if is_bitstream(path):
        from .codec.bitstream import DecodedStream
        from .codec.container import Container
        from .codec.header import StreamHeader

        container = Container(path)
        header = StreamHeader.parse(container.header, path, container.size)
        start, stop = resolve_frames(frames_text, header.num_frames, path)
        return DecodedStream(path, (start, stop)), start, stop
    from .eval.evaluate import load_run

    run = load_run(path)
    return (run, *resolve_frames(frames_text, run.num_frames, path))


def resolve_frames(text: str | None, num_frames: int, what: str) -> tuple[int, int]:
    from .capture import parse_frame_range

    rng = parse_frame_range(text) or (0, None)
    start, stop = rng[0], num_frames if rng[1] is None else rng[1]
    if not 0 <= start < stop <= num_frames:
        raise GIFStreamError(f"frames {start}:{stop} are outside {what}'s 0:{num_frames}")
    return start, stop


def cmd_eval(args) -> None:
    from .capture import load_capture
    from .eval.evaluate import evaluate, evaluate_run, load_run, write_eval

    if is_bitstream(args.source):
        from .codec.bitstream import DecodedStream
        from .codec.describe import bitrate_mbps

        if not args.capture:
            raise GIFStreamError("evaluating a bitstream needs --capture CAPTURE (the footage to compare with)")
        stream = DecodedStream(args.source)
        capture = load_capture(args.capture, downscale=stream.train_downscale)
        capture.check_matches(stream.cameras, stream.num_frames, args.source)
        result = evaluate(stream, capture)
        size = os.path.getsize(args.source)
        result |= {"bytes": size, "mbps": bitrate_mbps(size, stream.num_frames, stream.fps),
                   "decode_fps": stream.decode_fps()}
    else:
        run = load_run(args.source)
        capture = load_capture(args.capture, downscale=run.cfg.train.downscale) if args.capture else None
        if capture is not None and run.rig is not None:
            capture.check_matches(_rig_cameras(run, args.source)[0], run.num_frames, args.source)
        result = evaluate_run(run, capture)
        write_eval(run, result)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


def camera_from_json(path: str):
    """A camera from a JSON file {name?, width, height, K (3x3), w2c (4x4, OpenCV)} -- e.g. one entry of capture info."""
    from .capture.types import Camera

    try:
        with open(path) as f:
            spec = json.load(f)
        return Camera.from_json(spec, default_name="pose")
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise GIFStreamError(f"{path}: expected JSON with width, height, K (3x3) and w2c (4x4): {exc}") from exc


def _rig_cameras(source, path: str):
    """(cameras, fps) of a bitstream's header, or of a run's saved rig / capture."""
    from .capture import load_capture
    from .capture.types import Camera

    if is_bitstream(path):
        return source.cameras, source.fps
    if source.rig is not None:
        return [Camera.from_json(c) for c in source.rig["cameras"]], source.rig["fps"]
    capture = load_capture(source.capture_root, downscale=source.cfg.train.downscale)
    return capture.cameras, capture.fps


def cmd_render(args) -> None:
    import torch

    from .capture.video import write_video
    from .imageio import to_uint8, write_png
    from .render import render

    output_dir(args.out)
    source, start, stop = open_sequence(args.source, args.frames)
    rig, fps = _rig_cameras(source, args.source)
    if args.pose:
        cameras = [camera_from_json(args.pose)]
    else:
        by_name = {c.name: c for c in rig}
        names = args.camera or [c.name for c in rig if c.split == "test"] or [rig[0].name]
        missing = [n for n in names if n not in by_name]
        if missing:
            raise GIFStreamError(f"no camera {missing[0]!r}; cameras are {sorted(by_name)}")
        cameras = [by_name[n] for n in names]
    for camera in cameras:
        images = []
        with torch.no_grad():
            for t in range(start, stop):
                image = render(source.gaussians(t, camera), camera, background=torch.zeros(3)).rgb.numpy()
                write_png(os.path.join(args.out, f"{camera.name}_{t:05d}.png"), image)
                images.append(to_uint8(image))
        if len(images) > 1 and images[0].shape[0] % 2 == 0 and images[0].shape[1] % 2 == 0:
            write_video(os.path.join(args.out, f"{camera.name}.mp4"), np.stack(images), fps)
        print(f"{camera.name}: {len(images)} frames -> {args.out}")


def cmd_encode(args) -> None:
    encode_to(args.run, args.output, args.json)


def encode_to(run_dir: str, output: str, as_json: bool) -> None:
    from .capture import load_capture
    from .codec.bitstream import encode_run
    from .codec.describe import bitrate_mbps
    from .eval.evaluate import load_run
    from .train.trainer import rig_of

    output_file(output, "bitstream")
    run = load_run(run_dir)
    rig = run.rig or rig_of(load_capture(run.capture_root, downscale=run.cfg.train.downscale))
    result = encode_run(run, output, rig)
    result |= {"output": output, "frames": run.num_frames, "mbps": bitrate_mbps(result["bytes"], run.num_frames, rig["fps"])}
    if as_json:
        print(json.dumps(result))
        return
    print(f"{output}: {result['bytes']} bytes for {run.num_frames} frames at {rig['fps']:g} fps "
          f"({result['mbps']:.3f} Mbps), encoded in {result['seconds']:.2f} s")


def cmd_decode(args) -> None:
    from .fileio import atomic_path
    from .plyio import write_gaussian_ply

    if not is_bitstream(args.stream):
        raise GIFStreamError(f"{args.stream}: not a .gifs file")
    output_dir(args.out)
    begin = time.perf_counter()
    stream, start, stop = open_sequence(args.stream, args.frames)
    decode_seconds = write_seconds = 0.0
    for t in range(start, stop):
        tick = time.perf_counter()
        g = stream.gaussians(t)
        arrays = {name: tensor.numpy() for name, tensor in zip(("means", "quats", "scales", "opacities", "colors"), g.tensors())}
        decode_seconds += time.perf_counter() - tick
        tick = time.perf_counter()
        path = os.path.join(args.out, f"frame_{t:05d}.{args.format}")
        if args.format == "ply":
            write_gaussian_ply(path, **arrays)
        else:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, frame=t, fps=stream.fps, **arrays)
        write_seconds += time.perf_counter() - tick
    frames = stop - start
    total = stream.decode_seconds + decode_seconds
    print(f"decoded frames {start}:{stop} -> {args.out} ({args.format}); bitstream + Gaussians {total:.3f} s "
          f"= {frames / total:.1f} frames/s, files written in {write_seconds:.2f} s; total {time.perf_counter() - begin:.2f} s")


def cmd_render_layer(args) -> None:
    from .events import EventWriter
    from .render.exr_layer import render_layer

    events = EventWriter(enabled=True) if args.events else None
    summary = render_layer(args.sequence, args.cameras, args.out, events, backend=args.backend, device=args.device,
                           prefix=args.prefix)
    if events is not None:
        events.result(summary)
    else:
        print(f"{summary['frames']} frames -> {summary['out']} in {summary['seconds']:.1f} s")


def cmd_info(args) -> None:
    from .codec.container import Container
    from .codec.describe import describe
    from .codec.header import FORMAT, StreamHeader

    container = Container(args.file)
    container.verify()
    if container.header.get("format") == FORMAT:  # a GIFStream header is checked before it is described
        StreamHeader.parse(container.header, args.file, container.size)
    sizes = container.sizes()
    total = os.path.getsize(args.file)
    if args.json:
        print(json.dumps({"header": container.header, "sections": sizes, "bytes": total}))
        return
    print(describe(container.header, container.version, sizes, total, args.sections))


def _synth_args(p: argparse.ArgumentParser) -> None:
    from .capture.synth import MOTIONS

    p.add_argument("--cameras", type=int, default=8)
    p.add_argument("--num-frames", type=int, default=30)
    p.add_argument("--width", type=int, default=160)
    p.add_argument("--height", type=int, default=120)
    p.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--motion", choices=MOTIONS, default="orbit",
                   help="what moves: the ball orbits and the cube bounces (default), a fast straight translation, "
                        "rotation in place, or the ball entering mid-clip")
    p.add_argument("--blender-python", default=None,
                   help="a Python with the bpy module, or a blender executable (default: this interpreter)")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other error (the full usage is under --help)."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"gifstream: error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gifstream", description="GIFStream 4D Gaussian immersive-video engine")
    parser.add_argument("--version", action="version", version=f"gifstream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    capture = sub.add_parser("capture", help="multi-view captures").add_subparsers(dest="capture_command", required=True)
    info = capture.add_parser("info", help="describe a capture's camera rig")
    _capture_args(info)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=cmd_capture_info)
    synth = capture.add_parser("synth", help="render the embedded dynamic scene with Blender's Cycles (N3DV layout)")
    synth.add_argument("out")
    _synth_args(synth)
    synth.set_defaults(func=cmd_capture_synth)
    points = capture.add_parser("points", help="initial point cloud (SfM of frame 0) as PLY")
    _capture_args(points)
    points.add_argument("--out", required=True, help="output .ply")
    points.add_argument("--sfm", action="store_true", help="triangulate even if the capture ships points")
    points.set_defaults(func=cmd_capture_points)

    train = sub.add_parser("train", help="train a GIFStream model on a capture")
    train.add_argument("capture")
    train.add_argument("--out", required=True, help="run folder")
    train.add_argument("--preset", action="append", help="preset name or TOML path; repeat to combine (default: preview)")
    train.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    train.add_argument("--steps", type=int, default=None, help="shortcut for --set train.steps=N")
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    train.add_argument("--no-stream", action="store_true", help="ablation: train without the feature stream")
    train.add_argument("--resume", action="store_true", help="continue from the run's checkpoints")
    train.add_argument("--overwrite", action="store_true", help="replace the run already in the folder (its config, "
                       "GOPs and eval; nothing else)")
    train.add_argument("--events", action="store_true", help="print JSON-lines events instead of text")
    train.add_argument("--workers", default=None, metavar="ray|auto|ray://HOST:PORT",
                       help="train GOPs in parallel on Ray: ray starts a local cluster, auto joins the running one, "
                            "ray://HOST:PORT a remote one (the run folder and capture must be on shared storage)")
    train.add_argument("--gop", type=int, default=None, metavar="N",
                       help="train GOP N only (a farm task); GOP 0 first, later GOPs start from its warm start")
    train.add_argument("--threads", type=int, default=None, metavar="N",
                       help="torch CPU threads per GOP (default: torch's own here, 1 per Ray task); on the CPU the "
                            "same thread count gives the same models")
    train.add_argument("--retries", type=int, default=3, help="with --workers: retries of a GOP whose worker died")
    train.set_defaults(func=cmd_train)
    asm = sub.add_parser("assemble", help="a run trained GOP by GOP (farm, --gop): check every GOP finished, evaluate "
                         "(RUN/eval.json) and optionally encode")
    asm.add_argument("run")
    asm.add_argument("--capture", default=None, help="the capture (default: the path saved in RUN/config.json)")
    asm.add_argument("-o", "--output", default=None, help="also encode the run into this .gifs file")
    asm.set_defaults(func=cmd_assemble)
    farm = sub.add_parser("farm-job", help="write an Open Job Description template that trains a run on a render farm")
    farm.add_argument("capture")
    farm.add_argument("--out", required=True, help="the run folder (on storage every farm worker sees)")
    farm.add_argument("--preset", action="append", help="preset name or TOML path; repeat to combine (default: preview)")
    farm.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    farm.add_argument("--steps", type=int, default=None, help="shortcut for --set train.steps=N")
    farm.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    farm.add_argument("--no-stream", action="store_true", help="ablation: train without the feature stream")
    farm.add_argument("--command", default=None, help="the gifstream executable on the farm's workers "
                      "(default: this installation's)")
    farm.add_argument("-o", "--output", required=True, help="the job template to write (.yaml or .json)")
    farm.set_defaults(func=cmd_farm_job)
    ev = sub.add_parser("eval", help="evaluate a trained run (writes RUN/eval.json) or a .gifs bitstream on test cameras")
    ev.add_argument("source", help="run folder or .gifs file")
    ev.add_argument("--capture", default=None, help="the capture to compare with (required for a bitstream)")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_eval)
    rend = sub.add_parser("render", help="render a trained run or a .gifs bitstream from its cameras or a free pose")
    rend.add_argument("source", help="run folder or .gifs file")
    rend.add_argument("--camera", action="append", help="camera name (default: the test cameras); repeatable")
    rend.add_argument("--pose", default=None, help="JSON file with width, height, K and w2c of a free camera")
    rend.add_argument("--frames", default=None, help="START:STOP")
    rend.add_argument("--out", required=True)
    rend.set_defaults(func=cmd_render)
    enc = sub.add_parser("encode", help="compress a trained run into one .gifs bitstream")
    enc.add_argument("run")
    enc.add_argument("-o", "--output", required=True, help="output .gifs file")
    enc.add_argument("--json", action="store_true")
    enc.set_defaults(func=cmd_encode)
    dec = sub.add_parser("decode", help="decode a .gifs bitstream into per-frame Gaussians (3DGS PLY or NPZ)")
    dec.add_argument("stream")
    dec.add_argument("--frames", default=None, help="START:STOP (default: all)")
    dec.add_argument("--format", choices=["ply", "npz"], default="ply")
    dec.add_argument("--out", required=True)
    dec.set_defaults(func=cmd_decode)

    layer = sub.add_parser("render-layer", help="rasterise a sequence from per-frame cameras into a multilayer EXR "
                           "sequence (RGBA + Z) for Blender's compositor")
    layer.add_argument("sequence", help=".gifs file, trained run folder or folder of per-frame 3DGS PLYs")
    layer.add_argument("--cameras", required=True, help="JSON with the frame mapping and one camera per scene frame "
                       "(see gifstream_engine/render/exr_layer.py)")
    layer.add_argument("--out", required=True, help="folder for PREFIX####.exr, one per scene frame")
    layer.add_argument("--prefix", default="layer_")
    layer.add_argument("--backend", choices=["auto", "gsplat", "torch"], default="auto")
    layer.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    layer.add_argument("--events", action="store_true", help="print JSON-lines events instead of text")
    layer.set_defaults(func=cmd_render_layer)

    info_cmd = sub.add_parser("info", help="header and per-section byte budget of a .gifs bitstream")
    info_cmd.add_argument("file")
    info_cmd.add_argument("--json", action="store_true", help="the whole header and every section's size as JSON")
    info_cmd.add_argument("--sections", action="store_true", help="list every section instead of summing per-frame ones")
    info_cmd.set_defaults(func=cmd_info)

    demo = sub.add_parser("demo", help="end-to-end run on the embedded synthetic capture")
    demo.add_argument("out", nargs="?", default="demo_run")
    demo.add_argument("--no-train", action="store_true", help="stop after the capture and its point cloud")
    demo.add_argument("--steps", type=int, default=None, help="training steps (default: the preview preset's)")
    _synth_args(demo)
    demo.set_defaults(func=cmd_demo)
    return parser


def one_line(text: str) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def write_crash_log(argv: list[str] | None) -> str:
    """A file holding the command and the traceback of the exception being handled; its path."""
    folder = os.environ.get(CRASH_DIR_ENV) or os.path.join(tempfile.gettempdir(), "gifstream-crashes")
    os.makedirs(folder, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(folder, f"crash-{stamp}-{os.getpid()}.log")
    with open(path, "w") as f:
        f.write(f"gifstream {__version__}\ncommand: {' '.join(sys.argv[:1] + list(argv if argv is not None else sys.argv[1:]))}\n\n")
        f.write(traceback.format_exc())
    return path


def main(argv: list[str] | None = None) -> int:
    """Exit status 0, EXIT_USER_ERROR for bad input (one line naming it), EXIT_INTERNAL_ERROR for a bug."""
    args = build_parser().parse_args(argv)
    from .events import EventWriter

    events = EventWriter(enabled=bool(getattr(args, "events", False)))
    try:
        args.func(args)
    except GIFStreamError as exc:
        message = one_line(exc)
        print(f"gifstream: error: {message}", file=sys.stderr)
        events.error(message)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("gifstream: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last-resort net: a bug, reported as one line and a crash log
        try:
            where = f"the traceback is in {write_crash_log(argv)}"
        except OSError as log_exc:
            traceback.print_exc()
            where = f"no crash log could be written ({log_exc.strerror or log_exc}); the traceback is above"
        message = f"internal error: {type(exc).__name__}: {one_line(exc)[:300]}; {where}; please report it"
        print(f"gifstream: {message}", file=sys.stderr)
        events.error(message)
        return EXIT_INTERNAL_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
