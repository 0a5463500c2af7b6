"""The `gifstream` command line's arguments: one subparser per command, each bound to its `cmd_*`."""

from __future__ import annotations

import argparse

from .. import __version__
from ..conventions import ERROR_PREFIX
from . import commands
from .exit_codes import EXIT_USER_ERROR


def _capture_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="capture folder (N3DV/LLFF, Panoptic, COLMAP or transforms.json layout)")
    p.add_argument("--downscale", type=float, default=1.0, help="image downscale factor (>= 1)")
    p.add_argument("--frames", default=None, help="frame range START:STOP (default: all)")



def _synth_args(p: argparse.ArgumentParser) -> None:
    from ..capture.synth import MOTIONS

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
    info.set_defaults(func=commands.cmd_capture_info)
    synth = capture.add_parser("synth", help="render the embedded dynamic scene with Blender's Cycles (N3DV layout)")
    synth.add_argument("out")
    _synth_args(synth)
    synth.set_defaults(func=commands.cmd_capture_synth)
    points = capture.add_parser("points", help="initial point cloud (SfM of frame 0) as PLY")
    _capture_args(points)
    points.add_argument("--out", required=True, help="output .ply")
    points.add_argument("--sfm", action="store_true", help="triangulate even if the capture ships points")
    points.set_defaults(func=commands.cmd_capture_points)

    train = sub.add_parser("train", help="train a GIFStream model on a capture")
    train.add_argument("capture")
    train.add_argument("--out", required=True, help="run folder")
    train.add_argument("--preset", action="append", help="preset name or TOML path; repeat to combine (default: preview)")
    train.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    train.add_argument("--steps", type=int, default=None, help="shortcut for --set train.steps=N")
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    train.add_argument("--frames", default=None, metavar="START:STOP",
                       help="train these frames of the capture only (shortcut for --set train.frames=START:STOP)")
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
    train.set_defaults(func=commands.cmd_train)
    asm = sub.add_parser("assemble", help="a run trained GOP by GOP (farm, --gop): check every GOP finished, evaluate "
                         "(RUN/eval.json) and optionally encode")
    asm.add_argument("run")
    asm.add_argument("--capture", default=None, help="the capture (default: the path saved in RUN/config.json)")
    asm.add_argument("-o", "--output", default=None, help="also encode the run into this .gifs file")
    asm.set_defaults(func=commands.cmd_assemble)
    farm = sub.add_parser("farm-job", help="write an Open Job Description template that trains a run on a render farm")
    farm.add_argument("capture")
    farm.add_argument("--out", required=True, help="the run folder (on storage every farm worker sees)")
    farm.add_argument("--preset", action="append", help="preset name or TOML path; repeat to combine (default: preview)")
    farm.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    farm.add_argument("--steps", type=int, default=None, help="shortcut for --set train.steps=N")
    farm.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    farm.add_argument("--frames", default=None, metavar="START:STOP", help="train these frames of the capture only")
    farm.add_argument("--no-stream", action="store_true", help="ablation: train without the feature stream")
    farm.add_argument("--command", default=None, help="the gifstream executable on the farm's workers "
                      "(default: this installation's)")
    farm.add_argument("-o", "--output", required=True, help="the job template to write (.yaml or .json)")
    farm.set_defaults(func=commands.cmd_farm_job)
    ev = sub.add_parser("eval", help="evaluate a trained run (writes RUN/eval.json) or a .gifs bitstream on test cameras")
    ev.add_argument("source", help="run folder or .gifs file")
    ev.add_argument("--capture", default=None, help="the capture to compare with (required for a bitstream)")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=commands.cmd_eval)
    rend = sub.add_parser("render", help="render a trained run or a .gifs bitstream from its cameras or a free pose")
    rend.add_argument("source", help="run folder or .gifs file")
    rend.add_argument("--camera", action="append", help="camera name (default: the test cameras); repeatable")
    rend.add_argument("--pose", default=None, help="JSON file with width, height, K and w2c of a free camera")
    rend.add_argument("--frames", default=None, help="START:STOP")
    rend.add_argument("--out", required=True)
    rend.set_defaults(func=commands.cmd_render)
    enc = sub.add_parser("encode", help="compress a trained run into one .gifs bitstream")
    enc.add_argument("run")
    enc.add_argument("-o", "--output", required=True, help="output .gifs file")
    enc.add_argument("--json", action="store_true")
    enc.set_defaults(func=commands.cmd_encode)
    dec = sub.add_parser("decode", help="decode a .gifs bitstream into per-frame Gaussians (3DGS PLY or NPZ)")
    dec.add_argument("stream")
    dec.add_argument("--frames", default=None, help="START:STOP (default: all)")
    dec.add_argument("--format", choices=["ply", "npz"], default="ply")
    dec.add_argument("--out", required=True)
    dec.set_defaults(func=commands.cmd_decode)

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
    layer.set_defaults(func=commands.cmd_render_layer)

    info_cmd = sub.add_parser("info", help="header and per-section byte budget of a .gifs bitstream")
    info_cmd.add_argument("file")
    info_cmd.add_argument("--json", action="store_true", help="the whole header and every section's size as JSON")
    info_cmd.add_argument("--sections", action="store_true", help="list every section instead of summing per-frame ones")
    info_cmd.set_defaults(func=commands.cmd_info)

    demo = sub.add_parser("demo", help="end-to-end run on the embedded synthetic capture")
    demo.add_argument("out", nargs="?", default="demo_run")
    demo.add_argument("--no-train", action="store_true", help="stop after the capture and its point cloud")
    demo.add_argument("--steps", type=int, default=None, help="training steps (default: the preview preset's)")
    _synth_args(demo)
    demo.set_defaults(func=commands.cmd_demo)

    doctor = sub.add_parser("doctor", help="what this machine trains and renders with (torch, CUDA, GPUs, gsplat's "
                                           "kernels and their build tools) and what to do about each problem")
    doctor.add_argument("--json", action="store_true", help="one JSON object: checks, rasteriser per device, problems")
    doctor.set_defaults(func=commands.cmd_doctor)
    setup_gpu = sub.add_parser("setup-gpu", help="build gsplat's CUDA kernels now (installing NVIDIA's compiler "
                               "packages where no CUDA toolkit is installed); exit status 3 where torch has no CUDA device")
    setup_gpu.add_argument("--events", action="store_true", help="print JSON-lines events instead of text")
    setup_gpu.set_defaults(func=commands.cmd_setup_gpu)
    return parser

