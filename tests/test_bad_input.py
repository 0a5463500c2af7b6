"""Bad input ends in one clear message: a table of malformed captures, options, output paths, run folders and
bitstreams, built here from the embedded capture, each run through `gifstream` and required to end with exit
status 2, one line naming the problem, no traceback, no crash log and every file that was there before unchanged.
Then the run-folder rules (two trainers, --overwrite, a lock a killed process leaves), a full disk, a pickle
payload in model.pt, the last-resort net itself, and the add-on showing the engine's one-line messages."""

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import lzma
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from typing import Callable

import numpy as np
import pytest
import torch

from builders import write_colmap_text, write_nerfstudio, write_panoptic
from conftest import addon_module
from gifstream_engine.cli import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, main
from gifstream_engine.codec.container import Container, write_container

CLI = [sys.executable, "-m", "gifstream_engine.cli"]


# --- shared inputs, built once ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(synth_capture, tmp_path_factory):
    """One tiny finished run and its bitstream: inputs that later cases damage (always in copies)."""
    from gifstream_engine.codec.bitstream import encode_run
    from gifstream_engine.capture import load_capture
    from gifstream_engine.train.run_folder import load_run
    from gifstream_engine.train.config import load_config
    from gifstream_engine.train.driver import Training

    cfg = load_config(["preview"], ["train.steps=12", "train.max_anchors=400", "train.log_every=100",
                                    "train.checkpoint_every=100", "train.densify_every=5"])
    root = tmp_path_factory.mktemp("trained")
    run = str(root / "run")
    assert Training(load_capture(synth_capture), cfg, run, log=lambda *_: None).run() == "finished"
    gifs = str(root / "run.gifs")
    encode_run(load_run(run), gifs, load_run(run).rig)
    return run, gifs


@pytest.fixture(scope="module")
def layouts(synth_loaded, tmp_path_factory):
    """The embedded capture written as nerfstudio, Panoptic and COLMAP captures."""
    root = tmp_path_factory.mktemp("layouts")
    out = {"nerfstudio": str(root / "ns"), "panoptic": str(root / "pan"), "colmap": str(root / "colmap")}
    write_nerfstudio(synth_loaded, out["nerfstudio"])
    write_panoptic(synth_loaded, out["panoptic"])
    write_colmap_text(synth_loaded, out["colmap"])
    return out


@dataclasses.dataclass
class Ctx:
    work: str  # everything a case builds lives here; all of it must be unchanged by the failing command
    capture: str
    loaded: object
    layouts: dict
    run: str
    gifs: str
    held: list = dataclasses.field(default_factory=list)  # open files a case keeps (a held lock)

    def path(self, *parts) -> str:
        return os.path.join(self.work, *parts)

    def capture_copy(self) -> str:
        return shutil.copytree(self.capture, self.path("capture"))

    def run_copy(self) -> str:
        return shutil.copytree(self.run, self.path("run"))

    def gifs_copy(self) -> str:
        return shutil.copy(self.gifs, self.path("copy.gifs"))


@pytest.fixture
def ctx(synth_capture, synth_loaded, layouts, trained, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    c = Ctx(str(work), synth_capture, synth_loaded, layouts, *trained)
    yield c
    for fd in c.held:
        os.close(fd)


def snapshot(root: str) -> dict:
    """Every file under `root`: a regular file by its hash, a link by where it leads, a device, FIFO or socket by its
    kind and device number (never opened: a FIFO would block), so a node replaced by a file shows."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                files[os.path.relpath(path, root)] = ("link", os.readlink(path))
            elif not stat.S_ISREG(st.st_mode):
                files[os.path.relpath(path, root)] = ("node", stat.S_IFMT(st.st_mode), st.st_rdev)
            else:
                with open(path, "rb") as f:
                    files[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return files


def run_main(argv, crash_dir, capsys, monkeypatch):
    monkeypatch.setenv("GIFSTREAM_CRASH_DIR", crash_dir)
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@contextlib.contextmanager
def memory_guard(headroom: int = 4 << 30):
    """This process's address space capped at what it uses now plus `headroom` for the block: a command that reads
    /dev/zero or allocates a 10**6 x 10**6 image gets a MemoryError (a failed case), not the machine's memory."""
    import resource

    with open("/proc/self/status") as f:
        used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = used + headroom if hard == resource.RLIM_INFINITY else min(used + headroom, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def assert_one_clear_line(code, err, crash_dir, pattern):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == EXIT_USER_ERROR, err
    assert len(lines) == 1, err
    assert lines[0].startswith("gifstream: error:"), err
    assert "Traceback" not in err and "internal error" not in err
    assert re.search(pattern, lines[0]), lines[0]
    assert not os.path.exists(crash_dir) or not os.listdir(crash_dir), "the last-resort net was hit"


# --- builders of malformed input -----------------------------------------------------------------------------
POSES = "poses_bounds.npy"


def llff_poses(mutate: Callable[[np.ndarray], None]):
    """A copy of the capture whose poses_bounds.npy rows (N, 17) are changed by `mutate`."""
    return llff_file(poses_in(mutate))


def llff_file(write: Callable[[str], None], command=lambda c, root: ["capture", "info", root]):
    def build(c: Ctx):
        root = c.capture_copy()
        write(root)
        return command(c, root)
    return build


def write_bytes(name: str, data: bytes):
    def write(root):
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    return write


def save_npy(name: str, array, allow_pickle=False):
    return lambda root: np.save(os.path.join(root, name), array, allow_pickle=allow_pickle)


def truncate(name: str, fraction: float):
    def write(root):
        path = os.path.join(root, name)
        data = open(path, "rb").read()
        open(path, "wb").write(data[: int(len(data) * fraction)])
    return write


def rewrite_video(name: str, frames: slice = slice(None), fps: float = 30.0):
    def write(root):
        from gifstream_engine.capture.video import VideoSource, write_video

        path = os.path.join(root, name)
        source = VideoSource(path)
        video = source.read(0, source.num_frames(), source.width, source.height)[frames]
        os.remove(path)
        write_video(path, video, fps)
    return write


def poses_in(mutate: Callable[[np.ndarray], None]):
    def write(root):
        poses = np.load(os.path.join(root, POSES))
        mutate(poses)
        np.save(os.path.join(root, POSES), poses)
    return write


def truncated_gifs(c: Ctx):
    path = c.gifs_copy()
    truncate(os.path.basename(path), 0.7)(c.work)
    return ["decode", path, "--out", c.path("d")]


def rename(src: str, dst: str):
    return lambda root: os.rename(os.path.join(root, src), os.path.join(root, dst))


def set_row(row: int, col: int, value):
    def mutate(p):
        p[row, col] = value
    return mutate


def scale_rotation(p):
    p[1, [0, 1, 2, 5, 6, 7, 10, 11, 12]] *= 2.0


def nerfstudio(mutate: Callable[[dict], None], raw: bytes | None = None):
    """transforms.json of the nerfstudio copy (images referenced by absolute path) changed by `mutate`."""
    def build(c: Ctx):
        base = c.layouts["nerfstudio"]
        with open(os.path.join(base, "transforms.json")) as f:
            meta = json.load(f)
        for frame in meta["frames"]:
            frame["file_path"] = os.path.join(base, frame["file_path"])
        mutate(meta)
        root = c.path("ns")
        os.makedirs(root)
        with open(os.path.join(root, "transforms.json"), "wb") as f:
            f.write(raw if raw is not None else json.dumps(meta).encode())
        return ["capture", "info", root]
    return build


def frame0(**fields):
    def mutate(meta):
        meta["frames"][0].update(fields)
    return mutate


def drop_frame0(key):
    return lambda meta: meta["frames"][0].pop(key)


def top(**fields):
    return lambda meta: meta.update(fields)


def panoptic(mutate: Callable[[dict], None], points: Callable[[str], None] | None = None):
    """train_meta.json of the Panoptic copy (images by absolute path) changed by `mutate`; `points` writes
    init_pt_cld.npz."""
    def build(c: Ctx):
        base = c.layouts["panoptic"]
        root = c.path("pan")
        os.makedirs(root)
        for name in ("train_meta.json", "test_meta.json"):
            with open(os.path.join(base, name)) as f:
                meta = json.load(f)
            meta["fn"] = [[os.path.join(base, "ims", fn) for fn in step] for step in meta["fn"]]
            if name == "train_meta.json":
                mutate(meta)
            with open(os.path.join(root, name), "w") as f:
                json.dump(meta, f)
        if points is not None:
            points(os.path.join(root, "init_pt_cld.npz"))
        return ["capture", "info", root]
    return build


def pan_set(key, value):
    return lambda meta: meta.update({key: value})


def pan_entry(key, value):
    def mutate(meta):
        meta[key][0][0] = value
    return mutate


def colmap(mutate_cameras: Callable[[list[str]], list[str]]):
    def build(c: Ctx):
        root = shutil.copytree(c.layouts["colmap"], c.path("colmap"))
        path = os.path.join(root, "sparse", "0", "cameras.txt")
        lines = open(path).read().splitlines()
        open(path, "w").write("\n".join(mutate_cameras(lines)) + "\n")
        return ["capture", "info", root]
    return build


def colmap_focal(value):
    def mutate(lines):
        parts = lines[0].split()
        parts[4] = parts[5] = str(value)
        return [" ".join(parts)] + lines[1:]
    return mutate


def train(*extra, out="run"):
    def build(c: Ctx):
        return ["train", c.capture, "--out", c.path(out), "--steps", "10", *extra]
    return build


def with_file(name: str, data: bytes, then: Callable[[Ctx, str], list]):
    def build(c: Ctx):
        path = c.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return then(c, path)
    return build


def damaged_run(change: Callable[[str], None], command=lambda c, run: ["eval", run]):
    def build(c: Ctx):
        run = c.run_copy()
        change(run)
        return command(c, run)
    return build


def in_run(name: str, data: bytes):
    def change(run):
        with open(os.path.join(run, name), "wb") as f:
            f.write(data)
    return change


def edit_config(mutate: Callable[[dict], None]):
    def change(run):
        path = os.path.join(run, "config.json")
        saved = json.load(open(path))
        mutate(saved)
        json.dump(saved, open(path, "w"))
    return change


def torch_in_run(name: str, obj):
    return lambda run: torch.save(obj, os.path.join(run, name))


def model_pt_changed(mutate: Callable[[dict], None]):
    def change(run):
        path = os.path.join(run, "gop_000", "model.pt")
        state = torch.load(path, weights_only=True)
        mutate(state)
        torch.save(state, path)
    return change


def locked_run(c: Ctx):
    """A run whose lock another process holds (flock on a second open file: the same conflict)."""
    run = c.run_copy()
    fd = os.open(os.path.join(run, ".gifstream.lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"pid 4242 training")
    c.held.append(fd)
    return ["train", c.capture, "--out", run, "--resume"]


def crafted(mutate_header=None, mutate_sections=None, command=lambda c, p: ["decode", p, "--out", c.path("dec")]):
    """A bitstream rewritten with a changed header or sections: every checksum valid, the content lying."""
    def build(c: Ctx):
        container = Container(c.gifs)
        header = json.loads(json.dumps(container.header))
        sections = {name: container.read(name) for name in container.names()}
        if mutate_header:
            mutate_header(header)
        if mutate_sections:
            mutate_sections(sections)
        path = c.path("crafted.gifs")
        write_container(path, header, sections)
        return command(c, path)
    return build


def gop0(**fields):
    return lambda h: h["gops"][0].update(fields)


def camera0(**fields):
    return lambda h: h["cameras"][0].update(fields)


def info_cmd(c, path):
    return ["info", path]


def eval_with_capture(change_capture):
    def build(c: Ctx):
        root = c.capture_copy()
        change_capture(root)
        return ["eval", c.gifs_copy(), "--capture", root]
    return build


def gifs_cmd(*args):
    return lambda c: [args[0], c.gifs_copy(), *[c.path(a[1:]) if isinstance(a, str) and a.startswith("@") else a
                                                 for a in args[1:]]]


class Payload:
    """Unpickling this runs a command that leaves a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


NOT_WRITABLE = "/proc/gifstream-no-such-dir"


# --- special files, links and inputs as outputs (issue 30) ---
def fifo(name: str) -> Callable[[Ctx], str]:
    def make(c: Ctx) -> str:
        os.mkfifo(c.path(name))
        return c.path(name)
    return make


def unix_socket(name: str) -> Callable[[Ctx], str]:
    def make(c: Ctx) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(c.path(name))  # the socket file stays after the socket closes
        return c.path(name)
    return make


def full_device(name: str) -> Callable[[Ctx], str]:
    """A character device node like /dev/full (1, 7), made in the case's own folder: the real /dev/full is never
    touched. Writing to it would only fail with ENOSPC; replacing it replaces only this node. Needs CAP_MKNOD."""
    def make(c: Ctx) -> str:
        try:
            os.mknod(c.path(name), 0o666 | stat.S_IFCHR, os.makedev(1, 7))
        except (PermissionError, OSError) as exc:
            pytest.skip(f"cannot make a device node here: {exc}")
        return c.path(name)
    return make


def link_to(name: str, target: Callable[[Ctx], str]) -> Callable[[Ctx], str]:
    def make(c: Ctx) -> str:
        os.symlink(target(c), c.path(name))
        return c.path(name)
    return make


def out_to(node: Callable[[Ctx], str], command: Callable[[Ctx, str], list]):
    """The command with an output path that `node` makes."""
    return lambda c: command(c, node(c))


def encode_to(c: Ctx, out: str) -> list:
    return ["encode", c.run, "-o", out]


def layer_cameras(width: int, height: int) -> bytes:
    focal = width / 2
    return json.dumps({"format": "gifstream-layer-cameras", "version": 1, "start_frame": 1, "scene_fps": 24.0,
                       "frames": [{"frame": 1, "width": width, "height": height,
                                   "K": [[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]],
                                   "w2c": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]}]}).encode()


def audio_only(name: str):
    """An mp4 holding one AAC stream and no picture."""
    def write(root):
        import av

        path = os.path.join(root, name)
        os.remove(path)
        with av.open(path, "w", format="mp4") as container:
            stream = container.add_stream("aac", rate=44100)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 44100
            for packet in [*stream.encode(frame), *stream.encode()]:
                container.mux(packet)
    return write


def npy_claiming(shape):
    """A .npy whose header claims `shape` but holds the six poses of the capture."""
    def write(root):
        path = os.path.join(root, POSES)
        poses = np.load(path)
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": shape})
            f.write(poses.astype("<f8").tobytes())
    return write


def one_training_camera(c: Ctx) -> list:
    """The capture cut to cam00 (the test camera) and cam01: one training camera."""
    root = c.capture_copy()
    poses = np.load(os.path.join(root, POSES))
    np.save(os.path.join(root, POSES), poses[:2])
    for i in range(2, 6):
        os.remove(os.path.join(root, f"cam{i:02d}.mp4"))
    return ["train", root, "--out", c.path("run"), "--steps", "10"]


CASES = [
    # --- capture readers: N3DV / LLFF ---
    ("poses_empty_file", llff_file(write_bytes(POSES, b"")), r"unreadable poses .*poses_bounds\.npy"),
    ("poses_strings", llff_file(save_npy(POSES, np.full((6, 17), "x"))), r"poses_bounds\.npy: poses: expected .*numbers"),
    ("poses_pickled_objects", llff_file(save_npy(POSES, np.array([{"a": 1}] * 6, dtype=object), True)), r"unreadable poses"),
    ("poses_an_npz", llff_file(lambda r: np.savez(os.path.join(r, "p.npz"), x=1) or os.replace(os.path.join(r, "p.npz"), os.path.join(r, POSES))), r"poses_bounds\.npy"),
    ("poses_wrong_shape", llff_file(save_npy(POSES, np.zeros((6, 15)))), r"expected an \(N, 17\) array"),
    ("poses_nan", llff_poses(set_row(2, 3, np.nan)), r"finite"),
    ("poses_zero_focal", llff_poses(set_row(1, 14, 0.0)), r"row of cam01: focal length"),
    ("poses_negative_focal", llff_poses(set_row(1, 14, -50.0)), r"focal length .*greater than 0"),
    ("poses_zero_width", llff_poses(set_row(0, 9, 0.0)), r"row of cam00: image width"),
    ("poses_zero_height", llff_poses(set_row(3, 4, 0.0)), r"row of cam03: image height"),
    ("poses_near_beyond_far", llff_poses(set_row(2, 15, 99.0)), r"0 < near < far"),
    ("poses_negative_near", llff_poses(set_row(2, 15, -1.0)), r"0 < near < far"),
    ("poses_rotation_scaled", llff_poses(scale_rotation), r"row of cam01: the rotation .*not orthonormal"),
    ("poses_aspect_contradicts_video", llff_poses(set_row(4, 4, 200.0)), r"aspect"),
    ("poses_fewer_than_videos", llff_file(rename("cam05.mp4", "extra.bin")), r"holds 6 camera poses but .* 5 camXX\.mp4"),
    ("video_garbage", llff_file(write_bytes("cam02.mp4", b"\x00garbage" * 100)), r"unreadable video .*cam02\.mp4"),
    ("video_other_frame_rate", llff_file(rewrite_video("cam03.mp4", fps=25.0)), r"different frame rates.*cam03 \(25 fps\)"),
    ("video_fewer_frames", llff_file(rewrite_video("cam04.mp4", frames=slice(0, 4))), r"unequal frame counts.*cam04 \(4 frames\)"),
    ("video_cut_midstream_points", llff_file(truncate("cam01.mp4", 0.6),
                                             lambda c, root: ["capture", "points", root, "--out", c.path("points.ply")]),
     r"cam01\.mp4"),
    ("capture_missing", lambda c: ["capture", "info", c.path("nothing")], r"does not exist"),
    ("capture_unknown_layout", lambda c: ["capture", "info", c.work], r"unknown capture layout"),
    ("downscale_nan", lambda c: ["capture", "info", c.capture, "--downscale", "nan"], r"downscale factor: expected a finite"),
    ("downscale_below_one", lambda c: ["capture", "info", c.capture, "--downscale", "0.5"], r"downscale factor.*at least 1"),
    ("frames_lone_number", lambda c: ["capture", "info", c.capture, "--frames", "2"], r"START:STOP"),
    ("frames_reversed", lambda c: ["capture", "info", c.capture, "--frames", "4:2"], r"START < STOP"),
    ("frames_beyond_end", lambda c: ["capture", "info", c.capture, "--frames", "0:99"], r"outside the capture's 0:6"),
    ("frames_not_numbers", lambda c: ["capture", "info", c.capture, "--frames", "a:b"], r"START:STOP"),
    # --- nerfstudio / D-NeRF ---
    ("ns_frame_without_file_path", nerfstudio(drop_frame0("file_path")), r"frame 0: missing field 'file_path'"),
    ("ns_frame_without_time", nerfstudio(drop_frame0("time")), r"frame 0 .*missing field 'time'"),
    ("ns_time_a_string", nerfstudio(frame0(time="noon")), r"frame 0: time: expected a finite number"),
    ("ns_matrix_strings", nerfstudio(frame0(transform_matrix=[["a"] * 4] * 4)), r"frame 0: transform_matrix"),
    ("ns_matrix_2x2", nerfstudio(frame0(transform_matrix=[[1, 0], [0, 1]])), r"transform_matrix: expected a 4x4 or 3x4"),
    ("ns_matrix_not_rigid", nerfstudio(lambda m: [f.update(transform_matrix=(np.asarray(f["transform_matrix"]) * 2).tolist()) for f in m["frames"]]),
     r"rotation is not orthonormal"),
    ("ns_zero_focal", nerfstudio(top(fl_x=0.0)), r"fl_x: expected .*greater than 0"),
    ("ns_negative_focal", nerfstudio(top(fl_x=-80.0, fl_y=-80.0)), r"fl_x"),
    ("ns_zero_width", nerfstudio(top(w=0)), r"transforms\.json: w: expected an integer"),
    ("ns_height_text", nerfstudio(top(h="tall")), r"transforms\.json: h: expected an integer"),
    ("ns_fps_zero", nerfstudio(top(fps=0)), r"fps: expected .*greater than 0"),
    ("ns_near_beyond_far", nerfstudio(top(near=10.0, far=1.0)), r"near < far"),
    ("ns_frames_not_a_list", nerfstudio(top(frames={"a": 1})), r"non-empty 'frames' list"),
    ("ns_not_json", nerfstudio(lambda m: None, raw=b"{not json"), r"unreadable transforms file"),
    ("ns_json_list", nerfstudio(lambda m: None, raw=b"[1, 2]"), r"expected a JSON object"),
    ("ns_missing_image", nerfstudio(lambda m: [f.update(file_path=f["file_path"] + ".gone.png") for f in m["frames"][:1]]),
     r"missing image"),
    ("ns_garbage_image", with_file("junk.png", b"\x89PNG not really", lambda c, p: nerfstudio(
        lambda m: [f.update(file_path=p) for f in m["frames"] if f["camera"] == m["frames"][0]["camera"]])(c)),
     r"image .*junk\.png"),
    # --- Panoptic ---
    ("pan_fn_not_a_list", panoptic(pan_set("fn", "ims/0/000000.png")), r"'fn' \(one entry per time step\): expected a list"),
    ("pan_fn_entry_a_number", panoptic(pan_entry("fn", 7)), r"'fn' entry 0 at time step 0: expected a non-empty string"),
    ("pan_k_not_3x3", panoptic(pan_entry("k", [[1, 0], [0, 1]])), r"'k' of camera .*: expected an \(3, 3\) array"),
    ("pan_w2c_strings", panoptic(pan_entry("w2c", [["x"] * 4] * 4)), r"'w2c' of camera"),
    ("pan_zero_focal", panoptic(pan_entry("k", [[0, 0, 48], [0, 0, 36], [0, 0, 1]])), r"focal lengths must be positive"),
    ("pan_width_zero", panoptic(pan_set("w", 0)), r"'w': expected an integer"),
    ("pan_cam_id_text", panoptic(pan_entry("cam_id", "left")), r"'cam_id' entry 0"),
    ("pan_missing_keys", panoptic(lambda m: m.pop("w2c")), r"missing keys \['w2c'\]"),
    ("pan_points_garbage", panoptic(lambda m: None, points=lambda p: open(p, "wb").write(b"PK\x03\x04garbage")), r"init_pt_cld\.npz"),
    ("pan_points_nan", panoptic(lambda m: None, points=lambda p: np.savez(p, data=np.full((20, 7), np.nan))), r"init_pt_cld\.npz: 'data': expected finite"),
    ("pan_points_two_columns", panoptic(lambda m: None, points=lambda p: np.savez(p, data=np.zeros((20, 2)))), r"\(N, >=6\)"),
    # --- COLMAP ---
    ("colmap_zero_focal", colmap(colmap_focal(0.0)), r"focal lengths must be positive"),
    ("colmap_garbage_model", colmap(lambda lines: ["1 PINHOLE x y z"]), r"COLMAP model"),
    # --- options ---
    ("set_voxel_zero", train("--set", "model.voxel_size=0"), r"model\.voxel_size: expected .*greater than 0"),
    ("set_lr_nan", train("--set", "train.lr_mlp=nan"), r"train\.lr_mlp: expected a finite number"),
    ("set_feat_dim_zero", train("--set", "model.feat_dim=0"), r"model\.feat_dim: expected an integer, at least 3"),
    ("set_hidden_negative", train("--set", "model.hidden=-24"), r"model\.hidden"),
    ("set_steps_too_few", train("--steps", "3"), r"train\.steps.*at least 10"),
    ("set_gop_fraction", train("--set", "train.gop_length=1.5"), r"train\.gop_length expects a int"),
    ("set_unknown_key", train("--set", "train.stepz=5"), r"unknown key train\.stepz"),
    ("set_bool_word", train("--set", "train.disable_stream=maybe"), r"expects true/false"),
    ("set_device_tpu", train("--set", "train.device=tpu"), r"train\.device must be auto, cpu or cuda"),
    ("preset_unknown", train("--preset", "nope"), r"unknown preset 'nope'"),
    ("preset_bad_toml", with_file("bad.toml", b"[model\nfeat_dim = ", lambda c, p: train("--preset", p)(c)), r"not valid TOML"),
    ("steps_not_a_number", train("--steps", "many"), r"invalid int value"),
    ("resume_and_overwrite", train("--resume", "--overwrite"), r"give one of them"),
    # --- output paths ---
    ("train_out_is_a_file", with_file("file.txt", b"keep me", lambda c, p: train(out="file.txt")(c)), r"is a file; expected a folder"),
    ("points_out_is_a_folder", lambda c: ["capture", "points", c.capture, "--out", c.work], r"is a folder; expected a file"),
    ("encode_out_is_a_folder", lambda c: ["encode", c.run, "-o", c.work], r"is a folder; expected a file"),
    ("encode_out_unwritable", lambda c: ["encode", c.run, "-o", f"{NOT_WRITABLE}/x.gifs"], r"cannot create|not writable"),
    ("decode_out_unwritable", lambda c: ["decode", c.gifs, "--out", NOT_WRITABLE], r"cannot create output folder"),
    ("render_out_under_a_file", with_file("f.bin", b"x", lambda c, p: ["render", c.gifs, "--out", os.path.join(p, "frames")]),
     r"cannot create output folder .*f\.bin/frames"),
    ("synth_out_is_a_file", with_file("cap.txt", b"x", lambda c, p: ["capture", "synth", p]), r"is a file; expected a folder"),
    # issue 30: never replace a device, FIFO, socket or an input; links are written through or refused
    ("encode_out_device_like_dev_full", out_to(full_device("full"), encode_to),
     r"bitstream .*/full is a character device, not a regular file; it is never replaced"),
    ("encode_out_fifo", out_to(fifo("out.gifs"), encode_to), r"out\.gifs is a FIFO \(named pipe\), not a regular file"),
    ("encode_out_socket", out_to(unix_socket("out.sock"), encode_to), r"out\.sock is a socket, not a regular file"),
    ("encode_out_link_to_a_fifo", out_to(link_to("link.gifs", fifo("pipe")), encode_to),
     r"link\.gifs \(a link to .*/pipe\) is a FIFO"),
    ("decode_out_fifo", out_to(fifo("frames"), lambda c, p: ["decode", c.gifs, "--out", p]),
     r"output folder .*frames is a FIFO \(named pipe\); expected a folder"),
    ("encode_out_is_the_runs_model", lambda c: ["encode", c.run_copy(), "-o", os.path.join(c.path("run"), "gop_000", "model.pt")],
     r"bitstream .*run/gop_000/model\.pt is a file of the run folder .*run, which this command reads"),
    ("encode_out_links_to_the_runs_model", lambda c: ["encode", c.run_copy(), "-o",
                                                      link_to("x.gifs", lambda c: os.path.join(c.path("run"), "gop_000", "model.pt"))(c)],
     r"x\.gifs \(a link to .*gop_000/model\.pt\) is a file of the run folder"),
    ("encode_out_is_the_runs_config", lambda c: ["encode", c.run_copy(), "-o", os.path.join(c.path("run"), "config.json")],
     r"config\.json is a file of the run folder"),
    ("render_out_inside_the_runs_gop", lambda c: ["render", c.run_copy(), "--out", os.path.join(c.path("run"), "gop_000", "frames")],
     r"output folder .*gop_000/frames is inside the run folder"),
    ("points_out_is_a_capture_file", lambda c: ["capture", "points", c.capture_copy(), "--out", os.path.join(c.path("capture"), POSES)],
     r"poses_bounds\.npy is a file of the capture folder"),
    ("decode_out_is_the_bitstream", lambda c: ["decode", c.gifs_copy(), "--out", c.path("copy.gifs")], r"copy\.gifs is a file; expected a folder"),
    ("farm_job_out_txt", lambda c: ["farm-job", c.capture, "--out", c.path("run"), "-o", c.path("job.txt")],
     r"job template .*job\.txt: the file name must end in \.yaml or \.yml \(YAML\) or \.json \(JSON\)"),
    # issue 30: inputs are regular files of bounded size, never read from a device or FIFO
    ("info_dev_zero", lambda c: ["info", "/dev/zero"], r"bitstream /dev/zero is a character device, not a regular file; it is not read"),
    ("info_fifo", out_to(fifo("f.gifs"), lambda c, p: ["info", p]), r"bitstream .*f\.gifs is a FIFO \(named pipe\), not a regular file"),
    ("decode_fifo", out_to(fifo("f.gifs"), lambda c, p: ["decode", p, "--out", c.path("d")]), r"f\.gifs is a FIFO .*not a \.gifs file, a run folder"),
    ("render_layer_cameras_fifo", out_to(fifo("cams.json"), lambda c, p: ["render-layer", c.gifs, "--cameras", p, "--out", c.path("l")]),
     r"the cameras file .*cams\.json is a FIFO"),
    ("render_pose_fifo", out_to(fifo("pose.json"), lambda c, p: ["render", c.gifs, "--pose", p, "--out", c.path("r")]),
     r"camera file .*pose\.json is a FIFO"),
    ("capture_is_a_file", lambda c: ["capture", "info", os.path.join(c.capture, POSES)], r"poses_bounds\.npy is a file, not a capture folder"),
    ("train_capture_is_a_bitstream", lambda c: ["train", c.gifs, "--out", c.path("run"), "--steps", "10"],
     r"\.gifs is a file, not a capture folder; give the folder holding poses_bounds\.npy"),
    ("poses_header_claims_a_billion_rows", llff_file(npy_claiming((10**9, 17))),
     r"unreadable poses .*poses_bounds\.npy: its header describes a \(1000000000, 17\) array .* but 816 bytes follow"),
    ("video_audio_only", llff_file(audio_only("cam02.mp4")), r"cam02\.mp4: the video holds no picture stream \(it holds audio\)"),
    # issue 30: sizes that allocate are bounded first (16384 px, as `render` and bitstream headers)
    ("render_layer_camera_huge", with_file("cams.json", layer_cameras(10**6, 10**6),
                                           lambda c, p: ["render-layer", c.gifs, "--cameras", p, "--out", c.path("l")]),
     r"frames\[0\]: camera 'frame 1': 1000000x1000000 pixels; image sides must be at most 16384 pixels"),
    ("render_pose_huge", with_file("pose.json", json.dumps({"width": 10**6, "height": 10**6, "K": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
                                                             "w2c": np.eye(4).tolist()}).encode(),
                                   lambda c, p: ["render", c.gifs, "--pose", p, "--out", c.path("r")]),
     r"1000000x1000000 pixels; image sides must be at most 16384"),
    ("set_downscale_1000", train("--set", "train.downscale=1000"),
     r"a downscale factor of 1000 leaves camera 'cam00' \(96x72 pixels\) 0x0 pixels; the factor must be below 144"),
    ("train_one_training_camera", one_training_camera,
     r"the capture has 1 training camera \['cam01'\]; training needs at least 2"),
    # --- run folders ---
    ("train_over_finished_run", lambda c: ["train", c.capture, "--out", c.run_copy(), "--steps", "10"],
     r"already holds a training run .*--resume .*--overwrite"),
    ("eval_not_a_run", lambda c: ["eval", c.work], r"is not a training run: no config\.json"),
    ("config_not_json", damaged_run(in_run("config.json", b"{\"config\": ")), r"config\.json is damaged"),
    ("config_a_list", damaged_run(in_run("config.json", b"[]")), r"config\.json is damaged: expected an object"),
    ("config_bad_value", damaged_run(edit_config(lambda s: s["config"]["model"].update(voxel_size=-1))),
     r"config\.json: model\.voxel_size"),
    ("config_unknown_key", damaged_run(edit_config(lambda s: s["config"]["train"].update(warp=9))), r"unknown key train\.warp"),
    ("model_pt_truncated", damaged_run(lambda r: truncate(os.path.join("gop_000", "model.pt"), 0.5)(r)),
     r"gop_000/model\.pt is damaged"),
    ("model_pt_garbage", damaged_run(in_run(os.path.join("gop_000", "model.pt"), b"\x80\x04garbage")), r"model\.pt is damaged"),
    ("model_pt_wrong_structure", damaged_run(torch_in_run(os.path.join("gop_000", "model.pt"), {"step": 1})),
     r"model\.pt is damaged: field 'elapsed'"),
    ("model_pt_other_shapes", damaged_run(model_pt_changed(lambda s: s["model"].update(feat=torch.zeros(len(s["model"]["feat"]), 7)))),
     r"model\.pt does not match the run's configuration"),
    ("model_pt_no_anchors", damaged_run(model_pt_changed(lambda s: s["model"].update(anchor_xyz=torch.zeros(0, 3)))),
     r"anchor_xyz should be an \(N, 3\)"),
    ("config_rig_fps_zero", damaged_run(edit_config(lambda s: s["rig"].update(fps=0)),
                                        lambda c, run: ["encode", run, "-o", c.path("x.gifs")]), r"config\.json: rig\.fps"),
    ("config_rig_camera_without_K", damaged_run(edit_config(lambda s: s["rig"]["cameras"][0].pop("K")),
                                                lambda c, run: ["render", run, "--out", c.path("r")]),
     r"rig\.cameras\[0\]: camera 'cam00': missing field 'K'"),
    ("run_locked_by_another_process", locked_run, r"is in use by another gifstream process \(pid 4242 training"),
    ("checkpoint_damaged_on_resume", damaged_run(
        lambda r: (os.remove(os.path.join(r, "gop_000", "model.pt")), in_run(os.path.join("gop_000", "checkpoint.pt"), b"PK\x03\x04")(r)),
        lambda c, run: ["train", c.capture, "--out", run, "--resume"]), r"checkpoint\.pt is damaged"),
    # --- bitstreams: headers that pass their checksums but lie ---
    ("gifs_feat_dim_huge", crafted(lambda h: h["model"].update(feat_dim=1_000_000)), r"header model\.feat_dim.*at most 1024"),
    ("gifs_hidden_huge", crafted(lambda h: h["model"].update(hidden=10**9)), r"header model\.hidden"),
    ("gifs_feat_dim_text", crafted(lambda h: h["model"].update(feat_dim="24")), r"header model\.feat_dim: expected an integer"),
    ("gifs_model_unknown_field", crafted(lambda h: h["model"].update(layers=3)), r"unknown fields \['layers'\]"),
    ("gifs_camera_huge", crafted(camera0(width=10**9, height=10**9)), r"at most 16384"),
    ("gifs_camera_zero_focal", crafted(camera0(K=[[0, 0, 1], [0, 0, 1], [0, 0, 1]])), r"header cameras\[0\]: camera 'cam00': focal lengths must be positive"),
    ("gifs_cameras_not_a_list", crafted(lambda h: h.update(cameras="cam00")), r"header cameras: expected a list"),
    ("gifs_frames_huge", crafted(lambda h: (h.update(num_frames=10**12), h["gops"][0].update(num_frames=10**12))), r"num_frames"),
    ("gifs_num_frames_text", crafted(lambda h: h.update(num_frames="six")), r"header num_frames: expected an integer"),
    ("gifs_fps_zero", crafted(lambda h: h.update(fps=0)), r"header fps: expected .*greater than 0"),
    ("gifs_fps_negative_info", crafted(lambda h: h.update(fps=-30.0), command=info_cmd), r"header fps"),
    ("gifs_anchors_huge", crafted(gop0(num_anchors=10**9)), r"MiB to decode"),
    ("gifs_dynamic_beyond_anchors", crafted(lambda h: h["gops"][0].update(num_dynamic=h["gops"][0]["num_anchors"] + 1)),
     r"num_dynamic: expected an integer"),
    ("gifs_range_reversed", crafted(lambda h: h["gops"][0]["ranges"].update(feat=[5, -5])), r"lo <= hi"),
    ("gifs_octree_depth", crafted(gop0(octree_depth=99)), r"octree_depth"),
    ("gifs_gops_overlap", crafted(gop0(frame_offset=1)), r"do not tile"),
    ("gifs_decoders_bomb", crafted(mutate_sections=lambda s: s.update({"gop_000/decoders": lzma.compress(bytes(16 << 20))})),
     r"decoder weights decompresses to more than"),
    ("gifs_geometry_bomb", crafted(mutate_sections=lambda s: s.update({"gop_000/geometry": lzma.compress(bytes(16 << 20))})),
     r"octree occupancy decompresses to more than"),
    ("gifs_truncated", truncated_gifs, r"truncated"),
    ("gifs_not_a_bitstream", with_file("x.gifs", b"RIFF" + bytes(100), lambda c, p: ["info", p]), r"not a \.gifs bitstream"),
    ("gifs_decode_lone_frame", gifs_cmd("decode", "--frames", "2", "--out", "@d"), r"START:STOP"),
    ("gifs_decode_beyond_end", gifs_cmd("decode", "--frames", "0:99", "--out", "@d"), r"copy\.gifs: frames 0:99 are outside the stream's 0:6"),
    ("gifs_render_unknown_camera", gifs_cmd("render", "--camera", "nope", "--out", "@r"), r"no camera 'nope'"),
    ("gifs_render_pose_not_json", with_file("pose.json", b"{", lambda c, p: ["render", c.gifs, "--pose", p, "--out", c.path("r")]),
     r"expected JSON with width"),
    ("gifs_render_pose_zero_focal", with_file("pose.json", json.dumps({"width": 32, "height": 24, "K": [[0, 0, 16], [0, 0, 12], [0, 0, 1]],
                                                                     "w2c": np.eye(4).tolist()}).encode(),
                                              lambda c, p: ["render", c.gifs, "--pose", p, "--out", c.path("r")]), r"focal"),
    ("gifs_eval_without_capture", gifs_cmd("eval"), r"needs --capture"),
    ("gifs_eval_capture_other_cameras", eval_with_capture(rename("cam05.mp4", "cam09.mp4")), r"cameras only in the capture \['cam09'\]"),
    ("gifs_eval_capture_other_pose", eval_with_capture(poses_in(set_row(2, 3, 5.0))), r"camera 'cam02' has w2c"),
    ("gifs_eval_capture_other_frames", eval_with_capture(lambda r: [rewrite_video(f"cam{i:02d}.mp4", frames=slice(0, 4))(r) for i in range(6)]),
     r"the capture has 4 frames, .* 6"),
]


@pytest.mark.parametrize("name,build,pattern", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_one_clear_line(name, build, pattern, ctx, tmp_path, capsys, monkeypatch):
    argv = build(ctx)
    before = snapshot(ctx.work)
    crash = str(tmp_path / "crashes")

    def hung(*_):
        raise TimeoutError(f"{name}: the command blocked (reading a FIFO?)")

    previous = signal.signal(signal.SIGALRM, hung)  # a command that blocks fails the case instead of hanging the suite
    signal.alarm(120)
    with memory_guard():  # and one that reads or allocates without bound fails it instead of exhausting the machine
        try:
            code, _, err = run_main(argv, crash, capsys, monkeypatch)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    assert_one_clear_line(code, err, crash, pattern)
    assert snapshot(ctx.work) == before, "a failing command changed files that were there before"


def test_the_table_is_broad():
    kinds = {name.split("_")[0] for name, _, _ in CASES}
    assert len(CASES) >= 60 and {"poses", "ns", "pan", "colmap", "set", "gifs", "model", "config"} <= kinds


# --- run folders ---------------------------------------------------------------------------------------------
def test_two_trainers_one_folder(synth_capture, tmp_path):
    """The second trainer is refused while the first holds the folder; the first is unaffected; a trainer killed
    with SIGKILL leaves no stuck lock."""
    from gifstream_engine.train.run_folder import LOCK, locked

    run = str(tmp_path / "run")
    first = subprocess.Popen(CLI + ["train", synth_capture, "--out", run, "--steps", "400", "--events",
                                    "--set", "train.log_every=1", "--set", "train.max_anchors=300"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in first.stdout:
            if json.loads(line)["type"] == "progress":
                break
        config_before = open(os.path.join(run, "config.json")).read()
        second = subprocess.run(CLI + ["train", synth_capture, "--out", run, "--steps", "20", "--resume"],
                                capture_output=True, text=True, timeout=300)
        assert second.returncode == EXIT_USER_ERROR and "Traceback" not in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1 and "is in use by another gifstream process" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert open(os.path.join(run, "config.json")).read() == config_before
        assert first.poll() is None  # still training
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    assert os.path.exists(os.path.join(run, LOCK))  # killed: the file is left, but not the lock
    with locked(run, "test"):
        pass


def test_overwrite_replaces_only_the_run(trained, synth_capture, tmp_path, capsys, monkeypatch):
    run = shutil.copytree(trained[0], str(tmp_path / "run"))
    with open(os.path.join(run, "notes.txt"), "w") as f:
        f.write("the artist's notes")
    before = snapshot(run)
    crash = str(tmp_path / "crashes")
    code, _, err = run_main(["train", synth_capture, "--out", run, "--steps", "10"], crash, capsys, monkeypatch)
    assert_one_clear_line(code, err, crash, "already holds a training run")
    assert snapshot(run) == before
    code, _, err = run_main(["train", synth_capture, "--out", run, "--steps", "10", "--overwrite",
                             "--set", "train.max_anchors=200", "--set", "train.log_every=100"], crash, capsys, monkeypatch)
    assert code == 0, err
    saved = json.load(open(os.path.join(run, "config.json")))
    assert saved["config"]["train"]["steps"] == 10 and saved["config"]["train"]["max_anchors"] == 200
    assert open(os.path.join(run, "notes.txt")).read() == "the artist's notes"
    assert not os.path.exists(os.path.join(run, ".gifstream.lock"))


def test_disk_full_keeps_what_was_written(trained, tmp_path):
    """Writing past the file-size limit (what a full disk looks like to a writer): one message, the frames
    decoded before intact, no half-written file."""
    import resource

    out = str(tmp_path / "frames")
    done = subprocess.run(CLI + ["decode", trained[1], "--frames", "0:2", "--out", out], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    before = snapshot(out)
    limit = min(os.path.getsize(os.path.join(out, name)) for name in os.listdir(out)) // 2

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    env = {**os.environ, "GIFSTREAM_CRASH_DIR": str(tmp_path / "crashes")}
    full = subprocess.run(CLI + ["decode", trained[1], "--frames", "2:4", "--out", out], capture_output=True, text=True,
                          preexec_fn=small_disk, env=env)
    assert full.returncode == EXIT_USER_ERROR and len(full.stderr.strip().splitlines()) == 1, full.stderr
    assert "cannot write" in full.stderr and "frame_00002.ply" in full.stderr
    assert snapshot(out) == before
    assert not os.path.exists(tmp_path / "crashes")


@pytest.mark.parametrize("code_name", ["ENOSPC", "EIO"])
def test_write_errors_name_the_path_and_put_nothing_in_place(code_name, trained, tmp_path, capsys, monkeypatch):
    """A disk that fills (or fails) when the bitstream is synced: one line naming the file and the error, the file
    that was there unchanged, no temporary left; the same for a decode's frame folder."""
    import errno

    number = getattr(errno, code_name)

    def failing_fsync(fd):
        raise OSError(number, os.strerror(number))

    out = tmp_path / "out.gifs"
    out.write_bytes(b"the previous bitstream")
    crash = str(tmp_path / "crashes")
    monkeypatch.setattr(os, "fsync", failing_fsync)
    code, _, err = run_main(["encode", trained[0], "-o", out], crash, capsys, monkeypatch)
    assert_one_clear_line(code, err, crash, rf"cannot write .*out\.gifs: {re.escape(os.strerror(number))}")
    code, _, err = run_main(["decode", trained[1], "--out", tmp_path / "frames"], crash, capsys, monkeypatch)
    assert_one_clear_line(code, err, crash, rf"cannot write .*frame_00000\.ply: {re.escape(os.strerror(number))}")
    assert out.read_bytes() == b"the previous bitstream"
    assert sorted(os.listdir(tmp_path)) == ["out.gifs"]  # no frames folder, no .part file or folder


def test_a_link_is_written_through(trained, tmp_path, capsys, monkeypatch):
    """An output that is a symbolic link: the file it leads to is replaced (atomically, beside it), the link stays."""
    target = tmp_path / "store" / "stream.gifs"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "latest.gifs"
    link.symlink_to(target)
    code, _, err = run_main(["encode", trained[0], "-o", link], str(tmp_path / "crashes"), capsys, monkeypatch)
    assert code == 0, err
    assert os.path.islink(link) and os.readlink(link) == str(target)
    assert target.read_bytes()[:4] == b"GIFS" and os.listdir(target.parent) == ["stream.gifs"]


def test_an_interrupted_decode_leaves_its_folder_as_it_was(trained, tmp_path, capsys, monkeypatch):
    """Ctrl-C during `decode --out DIR` after a few frames: DIR is as it was (absent, or holding an earlier decode),
    nothing that could pass for a whole sequence; a whole decode is put in place; a `.part` folder (what a killed
    decode leaves) is refused by the engine and by the add-on with one message."""
    from gifstream_engine import sequence
    from gifstream_engine.cli import EXIT_INTERRUPTED

    write = sequence.write_gaussian_ply
    written = []

    def interrupted_after_two(path, **arrays):
        if len(written) == 2:
            raise KeyboardInterrupt
        write(path, **arrays)
        written.append(path)

    crash, out = str(tmp_path / "crashes"), str(tmp_path / "frames")
    monkeypatch.setattr(sequence, "write_gaussian_ply", interrupted_after_two)
    code, _, err = run_main(["decode", trained[1], "--out", out], crash, capsys, monkeypatch)
    assert code == EXIT_INTERRUPTED and "interrupted" in err and len(written) == 2
    assert os.listdir(tmp_path) == [], "an interrupted decode left files"
    monkeypatch.setattr(sequence, "write_gaussian_ply", write)
    code, _, err = run_main(["decode", trained[1], "--frames", "0:2", "--out", out], crash, capsys, monkeypatch)
    assert code == 0, err
    before = snapshot(out)
    written.clear()
    monkeypatch.setattr(sequence, "write_gaussian_ply", interrupted_after_two)
    code, _, err = run_main(["decode", trained[1], "--frames", "2:6", "--out", out], crash, capsys, monkeypatch)
    assert code == EXIT_INTERRUPTED and snapshot(out) == before and sorted(os.listdir(tmp_path)) == ["frames"]
    monkeypatch.setattr(sequence, "write_gaussian_ply", write)
    code, _, err = run_main(["decode", trained[1], "--frames", "2:6", "--out", out], crash, capsys, monkeypatch)
    assert code == 0, err
    assert sorted(os.listdir(out)) == [f"frame_{t:05d}.ply" for t in range(6)] and sorted(os.listdir(tmp_path)) == ["frames"]

    left = shutil.copytree(out, str(tmp_path / "frames.4242-0badf00d.part"))  # what a killed decode leaves
    message = r"frames\.4242-0badf00d\.part is an incomplete sequence: a '\.part' folder is one still being written"
    code, _, err = run_main(["eval", left, "--capture", tmp_path], crash, capsys, monkeypatch)
    assert_one_clear_line(code, err, crash, message)
    sequence_files = addon_module("core.sequence_files")
    with pytest.raises(sequence_files.SequenceError, match=message):
        sequence_files.find_pattern(left)
    assert sequence_files.find_pattern(out).count == 6


def test_model_pt_with_a_pickle_payload_is_refused_unrun(trained, tmp_path, capsys, monkeypatch):
    run = shutil.copytree(trained[0], str(tmp_path / "run"))
    marker = str(tmp_path / "payload_ran")
    path = os.path.join(run, "gop_000", "model.pt")
    state = torch.load(path, weights_only=True)
    state["elapsed"] = Payload(marker)
    torch.save(state, path)
    crash = str(tmp_path / "crashes")
    for argv in (["eval", run], ["encode", run, "-o", str(tmp_path / "x.gifs")], ["render", run, "--out", str(tmp_path / "r")]):
        code, _, err = run_main(argv, crash, capsys, monkeypatch)
        assert_one_clear_line(code, err, crash, r"gop_000/model\.pt is damaged or not a GIFStream file: .*refused without running")
    assert not os.path.exists(marker)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)


def test_saved_states_load_without_running_code(trained):
    for name in ("model.pt", "checkpoint.pt", "warm_start.pt"):
        state = torch.load(os.path.join(trained[0], "gop_000", name), weights_only=True)
        assert state["num_frames"] == 6 and isinstance(state["config"], dict)


# --- the net ---------------------------------------------------------------------------------------------------
def test_unexpected_exception_is_one_line_and_a_crash_log(tmp_path, capsys, monkeypatch):
    from gifstream_engine.cli import commands

    def broken(args):
        raise ZeroDivisionError("a bug\nover two lines")

    monkeypatch.setattr(commands, "cmd_info", broken)
    crash = str(tmp_path / "crashes")
    code, _, err = run_main(["info", "whatever.gifs"], crash, capsys, monkeypatch)
    lines = err.strip().splitlines()
    assert code == EXIT_INTERNAL_ERROR != EXIT_USER_ERROR and len(lines) == 1
    assert lines[0].startswith("gifstream: internal error: ZeroDivisionError: a bug; over two lines")
    logs = os.listdir(crash)
    assert len(logs) == 1 and os.path.join(crash, logs[0]) in lines[0]
    text = open(os.path.join(crash, logs[0])).read()
    assert "Traceback" in text and "in broken" in text and "info whatever.gifs" in text


# --- the add-on -----------------------------------------------------------------------------------------------
def test_addon_reports_the_engines_one_line(synth_capture, tmp_path):
    engine_client = addon_module("core.engine_client")
    training = addon_module("core.training")
    with pytest.raises(engine_client.EngineError) as info:
        engine_client.run_engine(sys.executable, ["capture", "info", synth_capture, "--frames", "2"])
    assert str(info.value).startswith("frame range '2' is not of the form START:STOP")
    job = training.TrainingJob(sys.executable, synth_capture, str(tmp_path / "run"), "", "", steps=10,
                               extra="--set model.voxel_size=0")
    job.engine.process.wait(timeout=300)
    time.sleep(1.0)  # let the reader threads pass on the last lines
    while job.poll():
        time.sleep(0.1)
    assert job.status == "failed"
    assert job.message.startswith("model.voxel_size: expected a finite number, greater than 0")
    assert "Traceback" not in "\n".join(job.log)


def test_training_inputs_that_are_fifos_are_refused_without_blocking(tmp_path):
    """A preset or a checkpoint that is a FIFO: one clear error at once, nothing read (it could block forever)."""
    from gifstream_engine.errors import ConfigError, RunError
    from gifstream_engine.train.checkpoint import load_state
    from gifstream_engine.train.config import load_config

    preset, state = str(tmp_path / "preset.toml"), str(tmp_path / "checkpoint.pt")
    os.mkfifo(preset)
    os.mkfifo(state)
    with pytest.raises(ConfigError, match=r"preset .*preset\.toml is a FIFO \(named pipe\), not a regular file"):
        load_config([preset])
    with pytest.raises(RunError, match=r"checkpoint\.pt is a FIFO \(named pipe\), not a regular file"):
        load_state(state, "cpu")
    with pytest.raises(RunError, match=r"checkpoint\.pt is missing"):
        load_state(str(tmp_path / "gone" / "checkpoint.pt"), "cpu")
