"""Initial point cloud: SfM points of a few frames triangulated with the known camera poses.

Per frame as in the paper (which seeds from frame 0 only): SIFT features on each camera's image of that frame,
exhaustive matching, then COLMAP's triangulator with the rig held fixed (pycolmap). Seeding from several frames
of the GOP puts anchors where objects are at those times, not only where they were at frame 0: an object that
moves far, or enters the view later, then has anchors along its path (the feature stream and opacity decide
when each one shows). The static set triangulates again in every frame; voxelisation merges its repeats.
When too few points triangulate (textureless or tiny captures), random points inside the scene bounds are used
instead, with a warning.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import warnings

import numpy as np

from ..errors import GIFStreamError
from ..imageio import resize, write_png
from . import spread_frames
from .sfm_cache import frame_key, read_entry, write_entry
from .types import Capture

MIN_POINTS = 30
# SIFT sees images of at most this many pixels a side: seeds are voxelised at the model's voxel size, which a
# 1024-pixel image resolves; larger images cost SIFT time with the square of their side (N3DV's 1352x1014 is 1.7x)
SIFT_MAX_SIZE = 1024
MOVING_CONTEXT_PX = 12  # with moving_only, SIFT looks this far around the moving pixels (a feature's support)
EXHAUSTIVE_CAMERAS = 8  # up to this many cameras every pair is matched; beyond, each camera with its neighbours
MATCH_NEIGHBOURS = 6  # the cameras nearest each camera (by centre) it is matched with in larger rigs
SCRATCH_PNG_LEVEL = 1  # the images COLMAP reads once: fast zlib (the default level took 0.65 s per 1352x1014 image)


@dataclasses.dataclass
class PointCloud:
    points: np.ndarray  # (N, 3) float64 world positions
    colors: np.ndarray  # (N, 3) uint8
    source: str  # "sfm", "capture" or "random"
    stats: dict = dataclasses.field(default_factory=dict)  # SfM counts when triangulated
    frames: np.ndarray | None = None  # (N,) the frame each point was triangulated in (None: frame 0 / unknown)


def _rotmat_to_qvec(rot: np.ndarray) -> np.ndarray:
    """Rotation matrix -> (w, x, y, z) unit quaternion (COLMAP order)."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(rot).as_quat()
    return np.array([w, x, y, z])


def _options(capture: Capture, max_image_size: int, min_sift_width: int, max_error_px: float, min_track: int | None,
             moving_only: bool) -> dict:
    if min_track is None:
        min_track = 3 if len(capture.cameras) >= 6 else 2
    return {"max_image_size": max_image_size, "min_sift_width": min_sift_width, "max_error_px": max_error_px,
            "min_track": min_track, "moving_only": moving_only}


def triangulate_frame(capture: Capture, frame: int = 0, max_image_size: int = SIFT_MAX_SIZE, min_sift_width: int = 640,
                      max_error_px: float = 2.0, min_track: int | None = None, moving_only: bool = False) -> PointCloud:
    """SfM points of one frame from all cameras (train and test) with poses held fixed.

    Small images are upscaled (by an integer factor, to at least `min_sift_width`) before SIFT, which
    otherwise finds too few features at the sizes of preview captures; points whose mean reprojection
    error exceeds `max_error_px` (in original pixels) or that fewer than `min_track` cameras see are dropped
    (default: 3 views in rigs of 6 or more cameras, else 2). Results are cached on disk by content
    (`sfm_cache`): the same frame of the same capture with the same options is triangulated once.
    """
    return triangulate_frames(capture, [frame], max_image_size, min_sift_width, max_error_px, min_track, moving_only)[0]


def triangulate_frames(capture: Capture, frames: list[int], max_image_size: int = SIFT_MAX_SIZE,
                       min_sift_width: int = 640, max_error_px: float = 2.0, min_track: int | None = None,
                       moving_only: bool = False, workers: int | None = None) -> list[PointCloud]:
    """`triangulate_frame` of each of `frames`, the ones not in the cache triangulated side by side in `workers`
    processes (default: the cores this process may use). Each frame's COLMAP runs single-threaded in its own
    process, so the points are those of one frame triangulated alone, whatever the number of workers."""
    options = _options(capture, max_image_size, min_sift_width, max_error_px, min_track, moving_only)
    keys = [frame_key(capture, frame, options) for frame in frames]
    entries = {key: entry for key in set(keys) if (entry := read_entry(key)) is not None}
    missing = list(dict.fromkeys((key, frame) for key, frame in zip(keys, frames) if key not in entries))
    for (key, _), result in zip(missing, _triangulate_all(capture, [f for _, f in missing], options, workers)):
        write_entry(key, result)
        entries[key] = result
    return [_cloud(entries[key], frame) for key, frame in zip(keys, frames)]


def _cloud(entry: dict, frame: int) -> PointCloud:
    points = np.asarray(entry["points"], np.float64).reshape(-1, 3)
    return PointCloud(points, np.asarray(entry["colors"], np.uint8).reshape(-1, 3), "sfm", json.loads(str(entry["stats"])),
                      np.full(len(points), frame, np.int64))


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _triangulate_all(capture: Capture, frames: list[int], options: dict, workers: int | None) -> list[dict]:
    """The cache entries ({points, colors, stats}) of `frames`, triangulated in up to `workers` processes
    (`capture/sfm_worker.py`, each a fresh Python: nothing of this process, such as torch's thread pool or a
    script's main module, is inherited); the images are written here, from the frames already decoded, while the
    workers run COLMAP on earlier ones."""
    workers = min(len(frames), workers or usable_cores())
    with tempfile.TemporaryDirectory(prefix="gifstream_sfm_") as tmp:
        if workers <= 1:
            return [_triangulate(_prepare(capture, frame, os.path.join(tmp, str(frame)), **options)) for frame in frames]
        from concurrent.futures import ThreadPoolExecutor

        from .sfm_worker import run_in_process

        with ThreadPoolExecutor(workers) as pool:  # each thread waits on its worker process
            futures = [pool.submit(run_in_process, _prepare(capture, frame, os.path.join(tmp, str(frame)), **options))
                       for frame in frames]
            return [future.result() for future in futures]


@dataclasses.dataclass(frozen=True)
class SfmJob:
    """One frame's triangulation, ready for COLMAP in any process: its images (and masks) written to `folder`,
    the rig's intrinsics scaled to those images, its poses and which image pairs to match."""
    folder: str
    names: list[str]  # one per camera; images are `{name}.png`
    intrinsics: list[tuple[float, float, float, float]]  # fx, fy, cx, cy of the written images
    sizes: list[tuple[int, int]]  # width, height of the written images
    w2c: list[np.ndarray]  # (4, 4) world-to-camera of each camera
    pairs: list[tuple[int, int]] | None  # camera index pairs to match; None: every pair
    scale: float  # written images / footage
    max_image_size: int
    max_error_px: float
    min_track: int
    masked: bool

    def to_json(self) -> str:
        fields = dataclasses.asdict(self) | {"w2c": [np.asarray(m).tolist() for m in self.w2c]}
        return json.dumps(fields)

    @staticmethod
    def from_json(text: str) -> "SfmJob":
        fields = json.loads(text)
        fields["w2c"] = [np.asarray(m, np.float64) for m in fields["w2c"]]
        fields["intrinsics"] = [tuple(v) for v in fields["intrinsics"]]
        fields["sizes"] = [tuple(v) for v in fields["sizes"]]
        fields["pairs"] = None if fields["pairs"] is None else [tuple(v) for v in fields["pairs"]]
        return SfmJob(**fields)


def _prepare(capture: Capture, frame: int, folder: str, max_image_size: int, min_sift_width: int,
             max_error_px: float, min_track: int, moving_only: bool) -> SfmJob:
    """Write frame's images of every camera (upscaled by an integer factor to at least `min_sift_width`) and,
    with `moving_only`, the masks of its moving pixels into `folder`."""
    scale = float(max(1, int(np.ceil(min_sift_width / max(c.width for c in capture.cameras)))))
    image_dir, mask_dir = os.path.join(folder, "images"), os.path.join(folder, "masks")
    os.makedirs(image_dir)
    os.makedirs(mask_dir)
    for i, cam in enumerate(capture.cameras):
        image = capture.frames(i)[frame]
        if moving_only:  # COLMAP extracts no feature where a mask (image name + .png) is black
            mask = capture.footage(i).moving([frame], dilate=MOVING_CONTEXT_PX)[0]
            mask = np.repeat(mask[..., None].astype(np.uint8) * 255, 3, -1)
            if scale > 1:
                mask = resize(mask, round(cam.width * scale), round(cam.height * scale), "POINT")
            write_png(os.path.join(mask_dir, f"{cam.name}.png.png"), mask, SCRATCH_PNG_LEVEL)
        if scale > 1:
            image = resize(image, round(cam.width * scale), round(cam.height * scale))
        write_png(os.path.join(image_dir, f"{cam.name}.png"), image, SCRATCH_PNG_LEVEL)
    pairs = None if len(capture.cameras) <= EXHAUSTIVE_CAMERAS else neighbour_pairs(capture.cameras, MATCH_NEIGHBOURS)
    return SfmJob(folder, [cam.name for cam in capture.cameras],
                  [(cam.K[0, 0] * scale, cam.K[1, 1] * scale, cam.K[0, 2] * scale, cam.K[1, 2] * scale) for cam in capture.cameras],
                  [(round(cam.width * scale), round(cam.height * scale)) for cam in capture.cameras],
                  [np.asarray(cam.w2c, np.float64) for cam in capture.cameras], pairs, scale, max_image_size,
                  max_error_px, min_track, moving_only)


def _write_known_model(job: SfmJob, db, folder: str) -> None:
    """A COLMAP text model with the database's ids, the job's intrinsics and poses, no points."""
    os.makedirs(folder, exist_ok=True)
    images = {img.name: img for img in db.read_all_images()}
    cam_lines, img_lines = [], []
    for name, params, (width, height), w2c in zip(job.names, job.intrinsics, job.sizes, job.w2c):
        db_image = images[f"{name}.png"]
        camera = db.read_camera(db_image.camera_id)
        camera.model = "PINHOLE"
        camera.params = list(params)
        db.update_camera(camera)
        cam_lines.append(f"{db_image.camera_id} PINHOLE {width} {height} {' '.join(map(repr, params))}")
        q, t = _rotmat_to_qvec(w2c[:3, :3]), w2c[:3, 3]
        img_lines.append(f"{db_image.image_id} {' '.join(map(repr, q))} {' '.join(map(repr, t))} {db_image.camera_id} {name}.png\n")
    with open(os.path.join(folder, "cameras.txt"), "w") as f:
        f.write("\n".join(cam_lines) + "\n")
    with open(os.path.join(folder, "images.txt"), "w") as f:
        f.write("\n".join(img_lines) + "\n")
    open(os.path.join(folder, "points3D.txt"), "w").close()


def _triangulate(job: SfmJob) -> dict:
    """COLMAP on a prepared frame (SIFT, matching, the triangulator with the rig held fixed), single-threaded:
    the cache entry {points (N, 3), colors (N, 3) uint8, stats (JSON)} of its points that pass the job's
    reprojection error and track length."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # COLMAP's per-image INFO lines drown our progress
    import pycolmap

    pycolmap.set_random_seed(0)  # RANSAC in verification and triangulation: same capture, same points
    image_dir, db_path = os.path.join(job.folder, "images"), os.path.join(job.folder, "database.db")
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "PINHOLE"
    if job.masked:
        reader.mask_path = os.path.join(job.folder, "masks")
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = job.max_image_size
    extraction.use_gpu = False
    extraction.num_threads = 1  # multi-threaded SIFT/matching order is not reproducible; one thread is
    pycolmap.extract_features(db_path, image_dir, camera_mode=pycolmap.CameraMode.PER_IMAGE,
                              reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)
    matching = pycolmap.FeatureMatchingOptions()
    matching.use_gpu = False
    matching.num_threads = 1
    matching.guided_matching = True  # the textures of real sets repeat: epipolar guidance recovers matches
    matching.sift.max_ratio = 0.9
    if job.pairs is None:
        pycolmap.match_exhaustive(db_path, matching_options=matching, device=pycolmap.Device.cpu)
    else:  # matching every pair grows with the square of the cameras; neighbours see the same surfaces anyway
        pairs_path = os.path.join(job.folder, "pairs.txt")
        with open(pairs_path, "w") as f:
            f.writelines(f"{job.names[a]}.png {job.names[b]}.png\n" for a, b in job.pairs)
        pairing = pycolmap.ImportedPairingOptions()
        pairing.match_list_path = pairs_path
        pycolmap.match_image_pairs(db_path, matching_options=matching, pairing_options=pairing,
                                   device=pycolmap.Device.cpu)
    model_dir = os.path.join(job.folder, "known")
    with pycolmap.Database.open(db_path) as db:
        _write_known_model(job, db, model_dir)
    rec = pycolmap.Reconstruction(model_dir)
    out_dir = os.path.join(job.folder, "triangulated")
    os.makedirs(out_dir)
    rec = pycolmap.triangulate_points(rec, db_path, image_dir, out_dir)
    with pycolmap.Database.open(db_path) as db:
        stats = {"keypoints": db.num_keypoints(), "matches": db.num_matches(),
                 "inlier_matches": db.num_inlier_matches(), "triangulated": len(rec.points3D)}
    points = [p for p in rec.points3D.values() if p.error <= job.max_error_px * job.scale and p.track.length() >= job.min_track]
    return {"points": np.array([p.xyz for p in points], np.float64).reshape(-1, 3),
            "colors": np.array([p.color for p in points], np.uint8).reshape(-1, 3), "stats": np.array(json.dumps(stats))}


def neighbour_pairs(cameras, count: int) -> list[tuple[int, int]]:
    """(a, b) with a < b: every camera with the `count` cameras whose centres are nearest its own (ties by index);
    about count * N / 2 pairs for N cameras instead of N (N - 1) / 2."""
    centres = np.array([cam.c2w[:3, 3] for cam in cameras])
    distance = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    pairs = set()
    for a in range(len(cameras)):
        order = [b for b in np.argsort(distance[a], kind="stable") if b != a][:count]
        pairs.update((min(a, int(b)), max(a, int(b))) for b in order)
    return sorted(pairs)


def merge_clouds(clouds: list[PointCloud], source: str) -> PointCloud:
    """One cloud of several frames' points; stats keep each frame's triangulated count."""
    frames = [c.frames if c.frames is not None else np.zeros(len(c.points), np.int64) for c in clouds]
    stats = {"frames": [int(f[0]) for f in frames if len(f)], "points_per_frame": [len(c.points) for c in clouds]}
    return PointCloud(np.concatenate([c.points for c in clouds]), np.concatenate([c.colors for c in clouds]),
                      source, stats, np.concatenate(frames))


def random_points(bounds: np.ndarray, count: int, seed: int = 0) -> PointCloud:
    rng = np.random.default_rng(seed)
    points = rng.uniform(bounds[0], bounds[1], size=(count, 3))
    return PointCloud(points, rng.integers(0, 256, size=(count, 3), dtype=np.uint8), "random")


def initial_point_cloud(capture: Capture, use_capture_points: bool = True, min_points: int = MIN_POINTS,
                        random_count: int = 20_000, seed: int = 0, num_seed_frames: int = 1,
                        moving_only: bool = False, workers: int | None = None) -> PointCloud:
    """Points to seed the anchors: the capture's own cloud (frame 0) or SfM of frame 0, plus SfM of the other
    `num_seed_frames - 1` frames spread over the capture; random points in the bounds if too few triangulate.

    moving_only: SfM of the moving pixels only (a later GOP, whose static set GOP 0's anchors already hold: SIFT
    and matching skip it); however few points that gives, they are the answer (no capture points, no random ones).
    workers: processes triangulating frames side by side (`triangulate_frames`)."""
    frames = spread_frames(capture.num_frames, num_seed_frames)
    clouds = []
    if moving_only:
        try:
            return merge_clouds(triangulate_frames(capture, frames, moving_only=True, workers=workers), "sfm")
        except GIFStreamError:
            raise
        except Exception as exc:  # COLMAP may find nothing to match where little moves
            warnings.warn(f"SfM of the moving pixels of frames {frames} failed ({exc}); no new seeds from them")
            return PointCloud(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), "sfm", {}, np.zeros(0, np.int64))
    if use_capture_points and capture.points is not None and len(capture.points) >= min_points:
        colors = capture.point_colors if capture.point_colors is not None else np.full((len(capture.points), 3), 128, np.uint8)
        clouds.append(PointCloud(capture.points, colors, "capture", frames=np.zeros(len(capture.points), np.int64)))
        frames = frames[1:]
    try:
        clouds += triangulate_frames(capture, frames, workers=workers)
    except GIFStreamError:  # the capture itself is unreadable: the same error training would meet
        raise
    except Exception as exc:  # pycolmap failures surface as RuntimeError with COLMAP's text
        if clouds:
            warnings.warn(f"SfM triangulation of frames {frames} failed ({exc}); seeding from the capture's points only")
            return clouds[0]
        warnings.warn(f"SfM triangulation failed ({exc}); using {random_count} random points in the scene bounds")
        return random_points(capture.scene_bounds, random_count, seed)
    cloud = clouds[0] if len(clouds) == 1 else merge_clouds(clouds, clouds[0].source)
    if cloud.source == "capture":
        return cloud
    if len(cloud.points) < min_points:
        warnings.warn(
            f"only {len(cloud.points)} points triangulated (need {min_points}); "
            f"using {random_count} random points in the scene bounds"
        )
        return random_points(capture.scene_bounds, random_count, seed)
    return cloud
