import copy
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from gifstream_engine.capture import load_capture
from gifstream_engine.errors import ConfigError
from gifstream_engine.train.config import load_config
from gifstream_engine.train.schedule import plan
from gifstream_engine.train.gop_data import load_gop_frames
from gifstream_engine.train.seeding import initial_model
from gifstream_engine.train.trainer import GopTrainer

FAST = ["train.log_every=10", "train.checkpoint_every=10", "train.densify_every=10"]


def test_schedule_phases_switch_in_order():
    cfg = load_config(["preview"], ["train.steps=1000"]).train
    phases = [plan(s, cfg).phase for s in range(1000)]
    assert phases[0] == "canonical" and phases[49] == "canonical" and phases[50] == "joint"
    assert phases[199] == "joint" and phases[200] == "qat_noise" and phases[667] == "qat_round"
    assert [plan(s, cfg).init_dynamic_masks for s in range(1000)].count(True) == 1 and plan(50, cfg).init_dynamic_masks
    assert not plan(10, cfg).decode.use_stream and plan(60, cfg).decode.use_stream
    assert plan(300, cfg).decode.quantize == "noise" and plan(700, cfg).decode.quantize == "round"
    assert not plan(300, cfg).entropy and plan(400, cfg).entropy
    assert plan(60, cfg).decode.stream_window > plan(190, cfg).decode.stream_window == 0


def test_bad_configs_are_rejected_clearly():
    with pytest.raises(ConfigError, match="unknown key train.stepz"):
        load_config(["preview"], ["train.stepz=5"])
    with pytest.raises(ConfigError, match="canonical_frac <= joint_end_frac"):
        load_config(["preview"], ["train.canonical_frac=0.5", "train.joint_end_frac=0.2"])
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_config(["nope"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(["preview"], ["steps=5"])
    with pytest.raises(ConfigError, match="expects a int"):
        load_config(["preview"], ["train.steps=many"])
    with pytest.raises(ConfigError, match="at least 10"):
        load_config(["preview"], ["train.steps=3"])
    with pytest.raises(ConfigError, match="train.rasterizer must be auto, gsplat or torch"):
        load_config(["preview"], ["train.rasterizer=cycles"])
    with pytest.raises(ConfigError, match="rasterizer=gsplat needs CUDA"):
        load_config(["preview"], ["train.rasterizer=gsplat", "train.device=cpu"])


def test_rate_presets_combine_with_a_dataset_preset():
    cfg = load_config(["n3dv", "r3"])
    assert cfg.train.lambda_entropy == 0.004 and cfg.train.geo_step == 0.08 and cfg.train.feat_step == 2.0
    assert cfg.train.gop_length == 60 and cfg.model.stream_dim == 4


def _trainer(capture, overrides, model=None):
    """model: None (seeded from the capture), or a model to start from a copy of."""
    cfg = load_config(["preview"], FAST + overrides)
    torch.manual_seed(cfg.train.seed)
    model = initial_model(capture, cfg, log=lambda *_: None) if model is None else copy.deepcopy(model)
    torch.manual_seed(cfg.train.seed)  # the same random stream for training whichever way the model was made
    return GopTrainer(cfg, load_gop_frames(capture), model, torch.device("cpu")), cfg


def test_knn_uses_kept_anchors_in_an_order_free_way():
    """The decoder holds only the kept anchors, in its own order: it must find the trainer's neighbours."""
    from gifstream_engine.model import GIFStreamModel, ModelConfig

    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(0, 12, (400, 3)), axis=0)  # a voxel grid: many equal distances
    xyz = ((keys + 0.5) * 0.04).astype(np.float32)
    cfg = ModelConfig()
    trained = GIFStreamModel(xyz, None, 2, cfg)
    pruned = rng.random(len(xyz)) < 0.3
    with torch.no_grad():
        trained.mask_logits[torch.as_tensor(pruned), 3] = -3.0
    trained.update_knn()
    assert not pruned[trained.knn_index.numpy()].any()
    kept = np.nonzero(~pruned)[0]
    order = rng.permutation(kept)
    decoded = GIFStreamModel(xyz[order], None, 2, cfg)
    by_trainer = [tuple(map(tuple, xyz[row])) for row in trained.knn_index.numpy()[order]]
    by_decoder = [tuple(map(tuple, xyz[order][row])) for row in decoded.knn_index.numpy()]
    assert by_trainer == by_decoder
    assert all(i not in row for i, row in enumerate(decoded.knn_index.numpy()))


def test_checkpoint_resume_is_bit_identical(synth_loaded, tmp_path):
    overrides = ["train.steps=40", "train.seed_frames=3"]  # 3 frames of SfM: the cost here is seeding
    straight, cfg = _trainer(synth_loaded, overrides)
    start = copy.deepcopy(straight.model)
    for _ in range(40):
        straight.train_step()
    first, _ = _trainer(synth_loaded, overrides, model=start)
    for _ in range(25):  # crosses canonical, joint and quantised phases and a densification
        first.train_step()
    path = str(tmp_path / "ckpt.pt")
    first.save(path)
    torch.manual_seed(1234)  # the restored RNG state must win over whatever the process did since
    resumed = GopTrainer.restore(path, cfg, load_gop_frames(synth_loaded), torch.device("cpu"))
    for _ in range(15):
        resumed.train_step()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _static_copy(synth_capture, tmp_path):
    from gifstream_engine.capture.video import write_video

    cap = load_capture(synth_capture)
    root = str(tmp_path / "static")
    os.makedirs(root)
    for i, cam in enumerate(cap.cameras):
        frames = np.repeat(cap.frames(i)[:1], cap.num_frames, axis=0)
        write_video(os.path.join(root, f"{cam.name}.mp4"), frames, cap.fps)
    np.save(os.path.join(root, "poses_bounds.npy"), np.load(os.path.join(synth_capture, "poses_bounds.npy")))
    return load_capture(root)


def test_stream_masks_go_to_zero_on_a_static_scene(synth_capture, tmp_path):
    static = _static_copy(synth_capture, tmp_path)
    trainer, cfg = _trainer(static, ["train.steps=200", "train.lr_mask=0.05", "train.lambda_mask=0.01"])
    for _ in range(200):
        trainer.train_step()
    from gifstream_engine.train.schedule import final_decode_state

    m_de = trainer.model.masks(final_decode_state(cfg.train))["de"]
    assert (m_de > 0).float().mean().item() < 0.05


def test_no_stream_ablation_keeps_masks_off(synth_loaded):
    trainer, cfg = _trainer(synth_loaded, ["train.steps=30", "train.disable_stream=true"])
    for _ in range(30):
        info = trainer.train_step()
    from gifstream_engine.train.schedule import final_decode_state

    assert (trainer.model.masks(final_decode_state(cfg.train))["de"] == 0).all()
    assert np.isfinite(info["loss"])


def test_cli_train_cancel_resume_eval_render(synth_capture, tmp_path):
    run = str(tmp_path / "run")
    cmd = [sys.executable, "-m", "gifstream_engine.cli", "train", synth_capture, "--out", run, "--steps", "60",
           "--set", "train.max_anchors=800", "--events", "--set", "train.log_every=2", "--set", "train.checkpoint_every=1000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events = []
    for line in proc.stdout:
        event = json.loads(line)
        events.append(event)
        if event["type"] == "progress" and event["step"] >= 10:
            proc.send_signal(signal.SIGTERM)
            break
    rest, err = proc.communicate(timeout=300)
    events += [json.loads(l) for l in rest.splitlines() if l.strip()]
    assert proc.returncode == 0, err
    result = [e for e in events if e["type"] == "result"][-1]["data"]
    assert result["status"] == "cancelled" and os.path.isfile(result["checkpoint"])
    progress = [e for e in events if e["type"] == "progress"][0]
    assert {"step", "total", "phase", "loss", "psnr", "anchors", "eta"} <= set(progress)

    done = subprocess.run(cmd[:7] + ["--events", "--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    final = [json.loads(l) for l in done.stdout.splitlines() if l.strip()][-1]
    assert final["type"] == "result" and final["data"]["status"] == "finished"
    with open(os.path.join(run, "eval.json")) as f:
        ev = json.load(f)
    assert {"test_psnr", "test_ssim", "train_psnr", "num_anchors", "dynamic_fraction", "train_seconds", "frames"} <= set(ev)
    assert ev["frames"] == 6 and 5 < ev["test_psnr"] < 60

    out = subprocess.run([sys.executable, "-m", "gifstream_engine.cli", "eval", run, "--json"], capture_output=True, text=True)
    assert out.returncode == 0 and json.loads(out.stdout)["test_psnr"] == pytest.approx(ev["test_psnr"], abs=1e-6)
    frames_dir = str(tmp_path / "frames")
    out = subprocess.run([sys.executable, "-m", "gifstream_engine.cli", "render", run, "--camera", "cam01", "--frames", "0:4",
                          "--out", frames_dir], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(frames_dir)) == ["cam01.mp4"] + [f"cam01_{t:05d}.png" for t in range(4)]
    pose = tmp_path / "pose.json"
    cam = load_capture(synth_capture).cameras[2]
    pose.write_text(json.dumps({"name": "free", "width": 64, "height": 48, "K":
                                [[cam.K[0, 0] / 1.5, 0, 32], [0, cam.K[1, 1] / 1.5, 24], [0, 0, 1]], "w2c": cam.w2c.tolist()}))
    out = subprocess.run([sys.executable, "-m", "gifstream_engine.cli", "render", run, "--pose", str(pose), "--frames", "2:3",
                          "--out", frames_dir], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    from gifstream_engine.imageio import read_png

    assert read_png(os.path.join(frames_dir, "free_00002.png")).shape == (48, 64, 3)


def test_multi_gop_training_warm_starts_later_gops(synth_capture, tmp_path):
    from gifstream_engine.eval.evaluate import evaluate
    from gifstream_engine.train.run_folder import load_run
    from gifstream_engine.train.driver import Training

    cfg = load_config(["preview"], FAST + ["train.steps=20", "train.gop_length=4", "train.max_anchors=500"])
    capture = load_capture(synth_capture)
    run = str(tmp_path / "run")
    assert Training(capture, cfg, run, log=lambda *_: None).run() == "finished"
    assert sorted(os.listdir(run)) == ["config.json", "gop_000", "gop_001"]
    assert os.path.isfile(os.path.join(run, "gop_000", "warm_start.pt"))
    trained = load_run(run)
    assert [(g.frame_offset, g.num_frames) for g in trained.gops] == [(0, 4), (4, 2)]
    from gifstream_engine.train.seeding import warm_started

    warm_path = os.path.join(run, "gop_000", "warm_start.pt")
    warm = torch.load(warm_path, weights_only=False)
    gop1 = capture.gops(4)[1]
    start = warm_started(warm_path, cfg, gop1, torch.device("cpu"), log=lambda *_: None)
    # a later GOP starts from GOP 0's warm-start anchors, features and decoders, with a fresh stream of its length,
    # plus anchors seeded on what moves in its own frames (their stream starts as a time code, masks open)
    n = len(warm["model"]["anchor_xyz"])
    assert torch.equal(start.anchor_xyz[:n], warm["model"]["anchor_xyz"]) and torch.equal(start.feat[:n], warm["model"]["feat"])
    assert torch.equal(start.color_mlp[0].weight, warm["model"]["color_mlp.0.weight"])
    assert start.stream.shape == (start.num_anchors, 2, cfg.model.stream_dim) and not start.stream[:n].any()
    assert start.num_anchors <= cfg.train.max_anchors and start.knn_index.shape == (start.num_anchors, cfg.model.knn)
    assert start.num_anchors > n  # the tiny capture's ball and cube move into voxels GOP 0 left empty
    assert start.stream[n:, :, 1].any(1).all() and (torch.sigmoid(start.mask_logits[n:, :2]) > 0.85).all()
    result = evaluate(trained, capture)
    assert result["frames"] == 6 and result["gops"] == 2


def test_a_cpu_trainer_leaves_deterministic_mode_as_it_found_it(synth_loaded):
    trainer, _ = _trainer(synth_loaded, ["train.steps=20", "train.seed_frames=2"])
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        for mode in ((False, False), (True, True)):
            torch.use_deterministic_algorithms(mode[0], warn_only=mode[1])
            trainer.train_step()
            assert (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) == mode
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def test_a_run_resumes_on_another_device_but_not_with_other_settings(synth_capture, tmp_path, capsys):
    """The device is where a run trains, not what it trains: --resume --device continues it (cpu -> auto here);
    any other change is refused."""
    from gifstream_engine.cli import EXIT_USER_ERROR, main
    from gifstream_engine.train.driver import Training
    from gifstream_engine.train.run_folder import RunFolder

    cfg = load_config(["preview"], FAST + ["train.steps=20", "train.seed_frames=2", "train.device=cpu"])
    run = str(tmp_path / "run")
    training = Training(load_capture(synth_capture), cfg, run, log=lambda *_: None)
    training.step_callbacks.append(lambda done: training.request_stop() if done.step == 10 else None)
    assert training.run() == "cancelled"
    assert main(["train", synth_capture, "--out", run, "--resume", "--set", "train.steps=30"]) == EXIT_USER_ERROR
    assert "only train.device may change" in capsys.readouterr().err
    assert main(["train", synth_capture, "--out", run, "--resume", "--device", "auto", "--set", "train.rasterizer=torch"]) == 0
    out = capsys.readouterr().out
    assert "GOP 0: resuming at step 10" in out
    assert RunFolder(run).read_config().train.device == "auto" and RunFolder(run).status() == "finished"
