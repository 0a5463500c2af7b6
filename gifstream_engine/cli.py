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

from . import __version__
from .conventions import ERROR_PREFIX
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
    from .capture import load_capture
    from .frames import parse_frame_range

    return load_capture(args.path, downscale=args.downscale, frames=parse_frame_range(args.frames))


def cmd_capture_info(args) -> None:
    from .capture import rig_table

    info = _load(args).info()
    print(json.dumps(info) if args.json else rig_table(info))


def _synth_config(args):
    from .capture.synth import SynthConfig

    return SynthConfig(num_cameras=args.cameras, num_frames=args.num_frames, width=args.width,
                       height=args.height, samples=args.samples, denoise=args.denoise, fps=args.fps, seed=args.seed, motion=args.motion)


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
    """Render the embedded capture, load it, seed points, render them from the test camera, print the rig; then
    train, encode, decode and evaluate (unless --no-train)."""
    from .demo import run_demo

    run_demo(args.out, _synth_config(args), python=args.blender_python, train=not args.no_train, steps=args.steps,
             log=print, progress_bar=sys.stderr.isatty())


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
    from .train.pipeline import train_and_evaluate
    from .train.run_folder import RunFolder

    overrides = _train_overrides(args)
    if args.resume and args.overwrite:
        raise GIFStreamError("--resume continues the run in the folder and --overwrite replaces it: give one of them")
    folder = RunFolder(args.out)
    if args.resume and folder.has_config() and not (args.preset or overrides):
        cfg = folder.read_config()  # a plain --resume continues with the run's settings
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
    if args.threads and not args.workers:
        import torch

        torch.set_num_threads(args.threads)
    capture = load_capture(args.capture, downscale=cfg.train.downscale)
    train = None
    if args.workers:  # the GOPs in parallel on Ray
        from .scale.ray_backend import ParallelOptions, train_parallel

        parallel = ParallelOptions(args.workers, args.threads or 1, args.retries)
        train = lambda: train_parallel(capture, cfg, args.out, parallel, events, log, resume=args.resume,  # noqa: E731
                                       overwrite=args.overwrite).status
    result = train_and_evaluate(capture, cfg, args.out, events, log, resume=args.resume, overwrite=args.overwrite,
                                progress_bar=sys.stderr.isatty() and not args.events, train=train)
    if result is not None:
        events.result({"status": "finished", "run": args.out, "eval": result})


def cmd_assemble(args) -> None:
    from .capture import load_capture
    from .scale.assemble import check_complete
    from .train.pipeline import evaluate_and_report
    from .train.run_folder import RunFolder

    gops = check_complete(args.run)
    saved = RunFolder(args.run).read_saved()
    capture = load_capture(args.capture or saved.capture, downscale=saved.run_config().train.downscale)
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


def cmd_eval(args) -> None:
    from .sources import evaluate_source

    result = evaluate_source(args.source, args.capture)
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


def cmd_render(args) -> None:
    from .sequence import render_views
    from .sources import open_sequence, pick_cameras, rig_of

    output_dir(args.out)
    source, start, stop = open_sequence(args.source, args.frames)
    if args.pose:
        cameras, fps = [camera_from_json(args.pose)], source.fps
    else:
        rig = rig_of(source, args.source)
        cameras, fps = pick_cameras(rig, args.camera, args.source), rig.fps
    for camera in cameras:
        count = render_views(source, camera, start, stop, args.out, fps)
        print(f"{camera.name}: {count} frames -> {args.out}")


def cmd_encode(args) -> None:
    encode_to(args.run, args.output, args.json)


def encode_to(run_dir: str, output: str, as_json: bool) -> None:
    from .codec.bitstream import encode_run
    from .codec.describe import bitrate_mbps
    from .sources import rig_of
    from .train.run_folder import RunFolder

    output_file(output, "bitstream")
    run = RunFolder(run_dir).load()
    rig = rig_of(run, run_dir)
    result = encode_run(run, output, rig)
    result |= {"output": output, "frames": run.num_frames, "mbps": bitrate_mbps(result["bytes"], run.num_frames, rig.fps)}
    if as_json:
        print(json.dumps(result))
        return
    print(f"{output}: {result['bytes']} bytes for {run.num_frames} frames at {rig.fps:g} fps "
          f"({result['mbps']:.3f} Mbps), encoded in {result['seconds']:.2f} s")


def cmd_decode(args) -> None:
    from .sequence import write_frames
    from .sources import is_bitstream, open_sequence

    if not is_bitstream(args.stream):
        raise GIFStreamError(f"{args.stream}: not a .gifs file")
    output_dir(args.out)
    begin = time.perf_counter()
    stream, start, stop = open_sequence(args.stream, args.frames)
    seconds = {"decode": 0.0, "write": 0.0}

    def count(_t: int, decode_s: float, write_s: float) -> None:
        seconds["decode"] += decode_s
        seconds["write"] += write_s

    write_frames(stream, args.out, start, stop, args.format, count)
    total = stream.decode_seconds + seconds["decode"]
    print(f"decoded frames {start}:{stop} -> {args.out} ({args.format}); bitstream + Gaussians {total:.3f} s "
          f"= {(stop - start) / total:.1f} frames/s, files written in {seconds['write']:.2f} s; "
          f"total {time.perf_counter() - begin:.2f} s")


def cmd_render_layer(args) -> None:
    from .events import EventWriter
    from .layer import render_layer

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
    kind = container.header.get("format", "container")
    # a GIFStream header is checked before it is described; another format's container is only measured
    header = StreamHeader.parse(container.header, args.file, container.size) if kind == FORMAT else None
    sizes = container.sizes()
    total = os.path.getsize(args.file)
    if args.json:
        print(json.dumps({"header": container.header, "sections": sizes, "bytes": total}))
        return
    print(describe(header, str(kind), container.version, sizes, total, args.sections))


def _synth_args(p: argparse.ArgumentParser) -> None:
    from .capture.synth import MOTIONS

    p.add_argument("--cameras", type=int, default=8)
    p.add_argument("--num-frames", type=int, default=30)
    p.add_argument("--width", type=int, default=160)
    p.add_argument("--height", type=int, default=120)
    p.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    p.add_argument("--no-denoise", dest="denoise", action="store_false",
                   help="keep Cycles' raw path-tracing noise (by default each image is denoised)")
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
        self.exit(EXIT_USER_ERROR, f"{ERROR_PREFIX}{self.prog}: {message} (see {self.prog} --help)\n")


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
        print(f"{ERROR_PREFIX}{message}", file=sys.stderr)
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
