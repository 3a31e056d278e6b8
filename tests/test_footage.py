"""Footage sampling for issue 7: stride, scene changes, de-duplication, hold-out, failing sources."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from kdedge.distill.footage import FootageOptions, load_footage, sample_source
from kdedge.errors import KdedgeError
from kdedge.metrics import temporal_flicker


def _scene(seed: int, t: int) -> np.ndarray:
    """A textured 64x96 BGR frame that pans slowly with t; each seed is a different scene."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (16, 40, 3)).astype(np.uint8)
    big = np.kron(base, np.ones((4, 4, 1), np.uint8))
    return np.ascontiguousarray(big[:, t:t + 96])


def _write_video(path, frames):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (96, 64))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()


def _frames():
    # scene A moving for 12 frames, then 6 identical frames of scene B (a static camera), then scene C
    return [_scene(1, t) for t in range(12)] + [_scene(2, 0)] * 6 + [_scene(3, t) for t in range(6)]


def test_stride_scene_change_and_dedup(tmp_path):
    video = tmp_path / "clip.avi"
    _write_video(video, _frames())
    frames, read, error = sample_source(str(video), FootageOptions(stride=5, dedup_threshold=1.0))
    assert error is None and read == 24
    indices = [f.index for f in frames]
    # stride keeps 0, 5, 10, 15 (a duplicate of 12 is dropped) and 20; scene changes add 12 and 18
    assert 12 in indices and 18 in indices
    assert 15 not in indices  # identical to frame 12, the last kept
    assert {0, 5, 10, 20} <= set(indices)
    assert all(f.pixels.shape == (64, 96, 3) for f in frames)


def test_resize_to_deployment_size_and_holdout(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    import cv2

    for i, f in enumerate(_scene(4, t) for t in range(10)):
        cv2.imwrite(str(folder / ("f%03d.png" % i)), f)
    footage = load_footage([str(folder)], FootageOptions(stride=1, dedup_threshold=0.0, size=(48, 32), holdout=0.2))
    assert footage.read == 10
    assert [f.index for f in footage.train] == list(range(8))
    assert [f.index for f in footage.val] == [8, 9]  # the last frames, contiguous in time
    assert footage.train[0].pixels.shape == (32, 48, 3)


def test_truncated_video_keeps_frames_read_before_the_failure(tmp_path):
    video = tmp_path / "clip.avi"
    _write_video(video, [_scene(5, t) for t in range(20)])
    data = video.read_bytes()
    broken = tmp_path / "broken.avi"
    broken.write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        footage = load_footage([str(broken)], FootageOptions(stride=1, dedup_threshold=0.0, holdout=0.0))
    assert 0 < len(footage.train) < 20  # the frames before the cut are kept
    assert footage.failed_sources == [str(broken)]
    assert any("broken.avi" in str(w.message) and "truncated" in str(w.message) for w in caught)


def test_no_usable_footage_is_an_error(tmp_path):
    with pytest.raises(KdedgeError, match="no usable footage"):
        load_footage([str(tmp_path / "missing.mp4")])
    with pytest.raises(KdedgeError, match="stride"):
        load_footage(["test://"], FootageOptions(stride=0))


def test_temporal_flicker():
    rng = np.random.default_rng(0)
    ref = [rng.uniform(0, 255, (16, 16)) for _ in range(4)]
    assert np.allclose(temporal_flicker(ref, ref), 0)
    shifted = [r + 10 for r in ref]  # a constant offset does not flicker
    assert np.allclose(temporal_flicker(shifted, ref), 0)
    noisy = [r + rng.normal(0, 5, r.shape) for r in ref]
    f = temporal_flicker(noisy, ref)
    assert f.shape == (3,) and np.all(f > 3)


def test_distill_on_footage_labels_frames_and_validates_by_agreement(tmp_path):
    """Footage frames join training as teacher-labelled samples; the held-out ones are validated by
    agreement with the teacher, and the labels are cached on disk (a second run recomputes none)."""
    import csv

    pytest.importorskip("torch")
    from test_distill import _teacher_file
    from test_train_utils import tiny_config

    from kdedge.distill.trainer import train

    video = tmp_path / "cam.avi"
    _write_video(video, [_scene(7, t) for t in range(20)])
    teacher = _teacher_file(tmp_path / "t.safetensors")
    cache = tmp_path / "cache"
    cfg = tiny_config(tmp_path, teacher=teacher, kd_weight=1.0, footage=[str(video)], footage_stride=2,
                      footage_holdout=0.2, unlabeled_ratio=0.5, teacher_cache="disk", cache_dir=str(cache))
    result = train(cfg)
    assert result["step"] == 6
    rows = [r for r in csv.DictReader(open(tmp_path / "run" / "metrics.csv")) if r["val_psnr"]]
    assert rows and all(15.0 < float(r["footage_agree_psnr"]) < 99 for r in rows)
    labels = sorted(cache.rglob("*.npy"))
    # 3 training images + 10 sampled frames (8 for training, 2 held out)
    assert len(labels) == 13
    mtimes = [p.stat().st_mtime_ns for p in labels]
    train(tiny_config(tmp_path / "again", teacher=teacher, kd_weight=1.0, footage=[str(video)], footage_stride=2,
                      footage_holdout=0.2, unlabeled_ratio=0.5, teacher_cache="disk", cache_dir=str(cache)))
    assert [p.stat().st_mtime_ns for p in sorted(cache.rglob("*.npy"))] == mtimes  # reused, not recomputed


def test_footage_without_teacher_is_refused(tmp_path):
    pytest.importorskip("torch")
    from test_train_utils import tiny_config

    with pytest.raises(KdedgeError, match="need a teacher"):
        tiny_config(tmp_path, footage=["test://"])
