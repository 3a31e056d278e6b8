"""Distillation pieces: the teacher cache, crops aligned with it, colour conversion, feature adapters."""
from __future__ import annotations

import csv

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_train_utils import tiny_config  # noqa: E402
from kdedge.checkpoint import save_checkpoint  # noqa: E402
from kdedge.distill.cache import TeacherCache, model_hash  # noqa: E402
from kdedge.distill.data import Image, PatchSampler, Sample, make_sample  # noqa: E402
from kdedge.distill.trainer import train  # noqa: E402
from kdedge.errors import KdedgeError  # noqa: E402
from kdedge.models import create_model  # noqa: E402
from kdedge.models.descriptor import SRModel  # noqa: E402


def _nearest_teacher(color="y", scale=2):
    """An anchor net with a zero tail: exactly nearest-neighbour upsampling, so exactly flip/rotation
    equivariant; any misaligned crop or flip of its cached label shows up as a mismatch."""
    m = create_model("anchor", scale=scale, color=color, width=4, depth=1)
    torch.nn.init.zeros_(m.tail.weight)
    torch.nn.init.zeros_(m.tail.bias)
    return SRModel(m.eval(), "anchor", scale, color, model_args={"width": 4, "depth": 1})


def _nearest(a, s):
    return a.repeat(s, axis=-2).repeat(s, axis=-1)


def _image(seed=0, h=20, w=26):
    return Image("img%d" % seed, np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.uint8))


@pytest.mark.parametrize("teacher_color", ["y", "rgb"])
def test_cached_labels_follow_crops_and_flips(teacher_color):
    s = 2
    samples = [make_sample(_image(i), s, "y") for i in range(3)]
    cache = TeacherCache(_nearest_teacher(teacher_color), "y", mode="memory")
    cache.fill(samples, progress=False)
    # An RGB teacher's output reaches the Y student through MATLAB's Y: for nearest upsampling that is
    # the nearest upsampling of the LR's Y, i.e. of the student's own input.
    for smp in samples:
        assert smp.teacher.dtype == np.float16
        assert np.abs(smp.teacher.astype(np.float32) - _nearest(smp.lr, s)).max() < 2e-3
    sampler = PatchSampler(samples, [], patch=6, scale=s, need_teacher=True, need_teacher_input=True)
    batch = sampler.sample(16, np.random.default_rng(0))
    assert batch["lr"].shape == (16, 1, 6, 6) and batch["teacher"].shape == (16, 1, 12, 12)
    assert np.abs(batch["teacher"] - _nearest(batch["lr"], s)).max() < 2e-3
    # The teacher input (RGB) is cropped and flipped with the LR patch too.
    from kdedge.distill.cache import rgb_to_y_torch

    y_of_tin = rgb_to_y_torch(torch.from_numpy(batch["teacher_input"])).numpy()
    assert np.abs(y_of_tin - batch["lr"]).max() < 1e-5


def test_hr_patches_follow_crops_and_flips():
    s = 3
    rng = np.random.default_rng(1)
    lr = rng.random((1, 10, 13)).astype(np.float32)
    sample = Sample("synthetic", np.zeros((10, 13, 3), np.uint8), lr, _nearest(lr, s))
    batch = PatchSampler([sample], [], patch=5, scale=s).sample(32, rng)
    assert np.array_equal(batch["hr"], _nearest(batch["lr"], s))
    assert batch["has_hr"].tolist() == [1.0] * 32


def test_unlabeled_mix_and_mask():
    labelled = [make_sample(_image(0), 2, "y")]
    unlabeled = [make_sample(_image(1), 2, "y", with_hr=False)]
    assert unlabeled[0].hr is None and unlabeled[0].lr.shape[1:] == (20, 26)
    TeacherCache(_nearest_teacher(), "y").fill(labelled + unlabeled, progress=False)
    batch = PatchSampler(labelled, unlabeled, 6, 2, unlabeled_ratio=0.25, need_teacher=True).sample(8, np.random.default_rng(0))
    assert batch["has_hr"].tolist() == [1.0] * 6 + [0.0] * 2


def test_device_patches_are_the_numpy_patches():
    """The GPU path (kdedge.distill.device_patches) cuts, flips and rotates exactly what the numpy sampler
    does from the same draws, ground truth, teacher labels and unlabelled placeholders included (run here
    on the CPU device: the indexing is the same code on CUDA)."""
    from kdedge.distill.device_patches import DevicePatches

    labelled = [make_sample(_image(i), 2, "y") for i in range(3)]
    unlabeled = [make_sample(_image(5), 2, "y", with_hr=False)]
    TeacherCache(_nearest_teacher(), "y").fill(labelled + unlabeled, progress=False)
    for need_teacher in (True, False):
        sampler = PatchSampler(labelled, unlabeled if need_teacher else [], 6, 2,
                               unlabeled_ratio=0.25 if need_teacher else 0.0, need_teacher=need_teacher)
        want = sampler.sample(24, np.random.default_rng(4))
        got = DevicePatches(sampler, "cpu").sample(24, np.random.default_rng(4))
        assert set(got) == set(want)
        for key in want:
            assert np.array_equal(got[key].numpy(), want[key]), key
    assert len({d[4] for d in sampler.draw(24, np.random.default_rng(4))}) >= 6  # the batch spans the flips/rotations
    with pytest.raises(ValueError, match="teacher's RGB input"):
        DevicePatches(PatchSampler(labelled, [], 6, 2, need_teacher_input=True), "cpu")


def test_disk_cache_is_reused_and_keyed_by_teacher(tmp_path):
    samples = [make_sample(_image(i), 2, "y") for i in range(2)]
    teacher = _nearest_teacher()
    first = TeacherCache(teacher, "y", mode="disk", folder=str(tmp_path))
    first.fill(samples, progress=False)
    assert first.misses == 2 and len(list(tmp_path.rglob("*.npy"))) == 2
    again = TeacherCache(teacher, "y", mode="disk", folder=str(tmp_path))
    labels = [again.label(smp.lr_u8) for smp in samples]
    assert again.misses == 0 and again.hits == 2
    assert all(np.array_equal(a, b.teacher) for a, b in zip(labels, samples))
    other = _nearest_teacher()
    torch.nn.init.constant_(other.module.tail.bias, 0.1)
    assert model_hash(other) != model_hash(teacher)
    assert TeacherCache(other, "y", mode="disk", folder=str(tmp_path)).folder != first.folder


def _teacher_file(path, color="rgb"):
    t = _nearest_teacher(color)
    save_checkpoint(path, t.module, arch="anchor", model_args={"width": 4, "depth": 1}, scale=2, color=color)
    return str(path)


def test_distill_with_cache_and_unlabeled_images(tmp_path):
    cfg = tiny_config(tmp_path, teacher=_teacher_file(tmp_path / "t.safetensors"), kd_weight=1.0, hr_as_lr=True,
                      unlabeled_ratio=0.5, teacher_cache="disk", cache_dir=str(tmp_path / "cache"))
    result = train(cfg)
    assert result["step"] == 6
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert all(float(r["kd"]) > 0 and float(r["gt"]) > 0 for r in rows)
    # 3 training images with ground truth + the same 3 used as LR inputs without it.
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 6


def test_feature_distillation_online(tmp_path):
    cfg = tiny_config(tmp_path, teacher=_teacher_file(tmp_path / "t.safetensors"), kd_weight=0.5, feat_weight=1.0,
                      feat_pairs="body.1=body.1,body.3=body.3", teacher_cache="off")
    train(cfg)
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert all(float(r["feat"]) > 0 for r in rows)
    with pytest.raises(KdedgeError, match="teacher has no layer"):
        train(tiny_config(tmp_path / "b", teacher=cfg.teacher, kd_weight=0.5, feat_weight=1.0, feat_pairs="body.1=nope"))
