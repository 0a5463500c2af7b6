"""Write a loaded capture back out in the other layouts the engine reads, so every reader is tested on real footage."""

import json
import os

import numpy as np

from gifstream_engine.capture.nerfstudio import GL_TO_CV
from gifstream_engine.imageio import write_png



def write_panoptic(capture, root):
    os.makedirs(root, exist_ok=True)
    for split, name in (("train", "train_meta.json"), ("test", "test_meta.json")):
        idx = capture.split_indices(split)
        meta = {"w": capture.cameras[0].width, "h": capture.cameras[0].height, "k": [], "w2c": [], "fn": [], "cam_id": []}
        for t in range(capture.num_frames):
            meta["k"].append([capture.cameras[i].K.tolist() for i in idx])
            meta["w2c"].append([capture.cameras[i].w2c.tolist() for i in idx])
            meta["fn"].append([f"{i}/{t:06d}.png" for i in idx])
            meta["cam_id"].append(idx)
        with open(os.path.join(root, name), "w") as f:
            json.dump(meta, f)
        for i in idx:
            os.makedirs(os.path.join(root, "ims", str(i)), exist_ok=True)
            for t in range(capture.num_frames):
                write_png(os.path.join(root, "ims", str(i), f"{t:06d}.png"), capture.frames(i)[t])
    pts = np.random.default_rng(0).uniform(-1, 1, (200, 3))
    np.savez(os.path.join(root, "init_pt_cld.npz"), data=np.concatenate([pts, np.full((200, 3), 0.5), np.ones((200, 1))], 1))


def write_colmap_text(capture, root, footage="images"):
    from scipy.spatial.transform import Rotation

    sparse = os.path.join(root, "sparse", "0")
    os.makedirs(sparse, exist_ok=True)
    cams, imgs = [], []
    for i, cam in enumerate(capture.cameras):
        k = cam.K
        cams.append(f"{i + 1} PINHOLE {cam.width} {cam.height} {k[0, 0]!r} {k[1, 1]!r} {k[0, 2]!r} {k[1, 2]!r}")
        x, y, z, w = Rotation.from_matrix(cam.w2c[:3, :3]).as_quat()
        t = cam.w2c[:3, 3]
        imgs.append(f"{i + 1} {w!r} {x!r} {y!r} {z!r} {t[0]!r} {t[1]!r} {t[2]!r} {i + 1} {cam.name}/000000.png\n")
        folder = os.path.join(root, footage, cam.name)
        os.makedirs(folder, exist_ok=True)
        for t_ in range(capture.num_frames):
            write_png(os.path.join(folder, f"{t_:06d}.png"), capture.frames(i)[t_])
    with open(os.path.join(sparse, "cameras.txt"), "w") as f:
        f.write("\n".join(cams) + "\n")
    with open(os.path.join(sparse, "images.txt"), "w") as f:
        f.write("\n".join(imgs) + "\n")
    with open(os.path.join(sparse, "points3D.txt"), "w") as f:
        f.write("")


def write_nerfstudio(capture, root, with_camera_field=True):
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    cam0 = capture.cameras[0]
    meta = {"fl_x": cam0.K[0, 0], "fl_y": cam0.K[1, 1], "cx": cam0.K[0, 2], "cy": cam0.K[1, 2],
            "w": cam0.width, "h": cam0.height, "fps": capture.fps, "frames": []}
    for i, cam in enumerate(capture.cameras):
        c2w_gl = np.linalg.inv(cam.w2c) @ GL_TO_CV
        for t in range(capture.num_frames):
            path = f"images/{cam.name}_{t:04d}.png"
            write_png(os.path.join(root, path), capture.frames(i)[t])
            frame = {"file_path": path, "transform_matrix": c2w_gl.tolist(), "time": t / max(1, capture.num_frames - 1)}
            if with_camera_field:
                frame["camera"] = cam.name
            meta["frames"].append(frame)
    with open(os.path.join(root, "transforms.json"), "w") as f:
        json.dump(meta, f)
