"""The `gifstream` subcommands: each `cmd_*` takes the parsed arguments and does one job."""

from __future__ import annotations

import json
import os
import sys
import time

from ..errors import GIFStreamError
from ..fileio import Input, output_dir, output_file, read_input, staged_dir

def _load(args):
    from ..capture import load_capture
    from ..frames import parse_frame_range

    return load_capture(args.path, downscale=args.downscale, frames=parse_frame_range(args.frames))


def cmd_capture_info(args) -> None:
    from ..capture import rig_table

    info = _load(args).info()
    print(json.dumps(info) if args.json else rig_table(info))


def _synth_config(args):
    from ..capture.synth import SynthConfig

    return SynthConfig(num_cameras=args.cameras, num_frames=args.num_frames, width=args.width,
                       height=args.height, samples=args.samples, denoise=args.denoise, fps=args.fps, seed=args.seed, motion=args.motion)


def cmd_capture_synth(args) -> None:
    from ..capture.synth import render_synthetic_capture

    output_dir(args.out, "capture folder")
    start = time.time()
    render_synthetic_capture(args.out, _synth_config(args), python=args.blender_python)
    print(f"wrote {args.out} in {time.time() - start:.1f} s")


def cmd_capture_points(args) -> None:
    from ..capture.sfm_init import initial_point_cloud
    from ..plyio import write_point_ply
    from ..sources import capture_input

    output_file(args.out, "point cloud", inputs=[capture_input(args.path)])
    cloud = initial_point_cloud(_load(args), use_capture_points=not args.sfm)
    write_point_ply(args.out, cloud.points, cloud.colors)
    print(f"{len(cloud.points)} points ({cloud.source}) -> {args.out} {cloud.stats or ''}")


def cmd_demo(args) -> None:
    """Render the embedded capture, load it, seed points, render them from the test camera, print the rig; then
    train, encode, decode and evaluate (unless --no-train)."""
    from ..demo import run_demo

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
    if getattr(args, "frames", None) is not None:
        overrides.append(f"train.frames={args.frames}")
    return overrides


def cmd_train(args) -> None:
    from ..events import EventWriter
    from ..train.config import apply_overrides, load_config
    from ..train.gop_data import check_training_cameras
    from ..train.pipeline import run_capture, train_and_evaluate
    from ..train.run_folder import RunFolder

    overrides = _train_overrides(args)
    if args.resume and args.overwrite:
        raise GIFStreamError("--resume continues the run in the folder and --overwrite replaces it: give one of them")
    folder = RunFolder(args.out)
    if args.resume and folder.has_config() and not args.preset:
        # --resume continues with the run's settings; --set/--device on top (only the device may differ)
        cfg = apply_overrides(folder.read_config(), overrides)
    else:
        cfg = load_config(args.preset or ["preview"], overrides)
    output_dir(args.out, "run folder")
    events = EventWriter(enabled=args.events)
    log = (lambda msg: events.log(msg)) if args.events else print
    if args.gop is not None:  # one GOP of a run (a farm task): no evaluation, that is `gifstream assemble`'s
        from ..scale.gop_job import train_gop_of_run

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
    capture = run_capture(args.capture, cfg)
    check_training_cameras(capture)
    train = None
    if args.workers:  # the GOPs in parallel on Ray
        from ..scale.ray_backend import ParallelOptions, train_parallel

        parallel = ParallelOptions(args.workers, args.threads or 1, args.retries)
        train = lambda: train_parallel(capture, cfg, args.out, parallel, events, log, resume=args.resume,  # noqa: E731
                                       overwrite=args.overwrite).status
    result = train_and_evaluate(capture, cfg, args.out, events, log, resume=args.resume, overwrite=args.overwrite,
                                progress_bar=sys.stderr.isatty() and not args.events, train=train)
    if result is not None:
        events.result({"status": "finished", "run": args.out, "eval": result})


def cmd_assemble(args) -> None:
    from ..scale.assemble import check_complete
    from ..train.pipeline import evaluate_and_report, run_capture
    from ..train.run_folder import RunFolder

    gops = check_complete(args.run)
    saved = RunFolder(args.run).read_saved()
    capture = run_capture(args.capture or saved.capture, saved.run_config())
    print(f"{args.run}: all {gops} GOPs trained")
    evaluate_and_report(capture, args.run, print)
    if args.output:
        encode_to(args.run, args.output, as_json=False)


def cmd_farm_job(args) -> None:
    from ..scale.farm_job import missing_defaults, template_format, write_farm_job
    from ..sources import capture_input
    from ..train.config import load_config
    from ..train.pipeline import run_capture

    template_format(args.output)  # .yaml/.yml or .json, known before any work
    presets = [os.path.abspath(p) if os.path.isfile(p) else p for p in args.preset or ["preview"]]  # TOML files by path
    cfg = load_config(presets, _train_overrides(args))
    capture = run_capture(args.capture, cfg)
    output_file(args.output, "job template",
                inputs=[capture_input(args.capture)] + [Input(p, "a preset") for p in presets if os.path.isfile(p)])
    job = write_farm_job(args.output, capture, os.path.abspath(args.capture), os.path.abspath(args.out), presets,
                         _train_overrides(args), cfg, command=args.command)
    params = "".join(f" -p {name}={path}" for name, path in missing_defaults(job.template).items())
    print(f"{args.output}: OpenJD job, {job.num_gops} GOPs ({job.gop_tasks} tasks after GOP 0) -> {args.out}; "
          f"check it with `openjd check {args.output}`, run it locally with "
          f"`openjd run --step Assemble --run-dependencies{params} {args.output}`")


def cmd_eval(args) -> None:
    from ..sources import evaluate_source

    result = evaluate_source(args.source, args.capture)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


MAX_POSE_BYTES = 1 << 20  # a --pose camera file


def camera_from_json(path: str):
    """A camera from a JSON file {name?, width, height, K (3x3), w2c (4x4, OpenCV)} -- e.g. one entry of capture info."""
    from ..capture.camera import Camera

    data = read_input(path, "camera file", GIFStreamError, MAX_POSE_BYTES)  # a regular file, bounded
    try:
        return Camera.from_json(json.loads(data), default_name="pose")
    except (KeyError, TypeError, ValueError) as exc:  # JSON and UTF-8 errors are ValueErrors
        raise GIFStreamError(f"{path}: expected JSON with width, height, K (3x3) and w2c (4x4): {exc}") from exc


def cmd_render(args) -> None:
    from ..eval.placement import OnDevice
    from ..render.device import run_device
    from ..sequence import render_views
    from ..sources import open_sequence, pick_cameras, rig_of, source_input

    pose = [Input(args.pose, "the camera file")] if args.pose else []
    output_dir(args.out, inputs=[source_input(args.source), *pose])
    source, start, stop = open_sequence(args.source, args.frames)
    if args.pose:
        cameras, fps = [camera_from_json(args.pose)], source.fps
    else:
        rig = rig_of(source, args.source)
        cameras, fps = pick_cameras(rig, args.camera, args.source), rig.fps
    placed = OnDevice(source, run_device(source))
    try:
        for camera in cameras:
            count = render_views(placed, camera, start, stop, args.out, fps)
            print(f"{camera.name}: {count} frames -> {args.out}")
    finally:
        placed.release()


def cmd_encode(args) -> None:
    encode_to(args.run, args.output, args.json)


def encode_to(run_dir: str, output: str, as_json: bool) -> None:
    """Encode on the CPU wherever the run trained: quantisation and the entropy coder are the codec's integer path,
    kept on one device so that a `.gifs` is the same bytes from any machine (codec/gop_coding.py moves the model's
    tensors to the CPU; the GPU would gain nothing there: the coder is constriction's)."""
    from ..codec.bitstream import encode_run
    from ..codec.describe import bitrate_mbps
    from ..sources import RUN_OWNS, rig_of
    from ..train.run_folder import RunFolder

    output_file(output, "bitstream", inputs=[Input(run_dir, "the run folder", RUN_OWNS)])
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
    from ..sequence import write_frames
    from ..sources import check_source, is_bitstream, open_sequence

    check_source(args.stream)
    if not is_bitstream(args.stream):
        raise GIFStreamError(f"{args.stream}: not a .gifs file")
    begin = time.perf_counter()
    seconds = {"decode": 0.0, "write": 0.0}

    def count(_t: int, decode_s: float, write_s: float) -> None:
        seconds["decode"] += decode_s
        seconds["write"] += write_s

    # the frames go into a folder of their own, put in place at the end: an interrupted or failed decode leaves
    # --out as it was (and no frames that could pass for a whole sequence)
    with staged_dir(args.out, inputs=[Input(args.stream, "the bitstream")]) as stage:
        stream, start, stop = open_sequence(args.stream, args.frames)
        write_frames(stream, stage, start, stop, args.format, count)
    total = seconds["decode"]  # each GOP decodes with its first frame
    print(f"decoded frames {start}:{stop} -> {args.out} ({args.format}); bitstream + Gaussians {total:.3f} s "
          f"= {(stop - start) / total:.1f} frames/s, files written in {seconds['write']:.2f} s; "
          f"total {time.perf_counter() - begin:.2f} s")


def cmd_render_layer(args) -> None:
    from ..events import EventWriter
    from ..layer import render_layer

    events = EventWriter(enabled=True) if args.events else None
    summary = render_layer(args.sequence, args.cameras, args.out, events, backend=args.backend, device=args.device,
                           prefix=args.prefix)
    if events is not None:
        events.result(summary)
    else:
        print(f"{summary['frames']} frames -> {summary['out']} in {summary['seconds']:.1f} s")


def cmd_info(args) -> None:
    from ..codec.container import Container
    from ..codec.describe import describe
    from ..codec.header import FORMAT, StreamHeader

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


def cmd_doctor(args) -> None:
    from ..render.environment import diagnose

    report = diagnose()
    print(json.dumps(report.to_json()) if args.json else report.table())


def cmd_setup_gpu(args) -> None:
    from ..events import EventWriter
    from ..render.gpu_setup import setup_gpu

    events = EventWriter(enabled=args.events)
    if args.events:
        log, progress = events.log, lambda step, total: events.progress("compile", step, total,
                                                                         phase="compiling GPU kernels")
    else:
        end = "\r" if sys.stdout.isatty() else "\n"
        log = print
        progress = lambda step, total: print(f"compiling GPU kernels [{step}/{total}]", end=end, flush=True)  # noqa: E731
    result = setup_gpu(log, progress)
    if args.events:
        events.result(result)
    else:
        print(f"\nready: gsplat's kernels {result['kernels']} (CUDA {result['cuda']}, nvcc from "
              f"{result['toolkit']['home']}); `gifstream doctor` shows the rasteriser per device")
