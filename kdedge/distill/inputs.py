"""What a training run learns from: images, held-out footage, the teacher and its label cache.

`load_data(cfg, device, dist)` returns a `RunData`: the patch sampler over labelled pairs (and
images without ground truth, labelled by the teacher when its outputs are cached), the fixed
validation pairs, the held-out footage frames (validated by agreement with the teacher) and the
teacher itself when it runs online (feature distillation, or no cache).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

from kdedge.distill import ddp
from kdedge.distill.cache import TeacherCache, check_teacher
from kdedge.distill.config import TrainConfig
from kdedge.distill.data import (EMBEDDED_VAL, Image, PatchSampler, embedded_images, folder_images, make_sample,
                                 make_val_pairs)
from kdedge.distill.footage import footage_options, load_footage
from kdedge.errors import KdedgeError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
EMBEDDED_TEACHER = ASSETS / "teacher_x2.safetensors"
EMBEDDED_STUDENT = ASSETS / "student_x2.safetensors"


class RunData(NamedTuple):
    """What the loop trains and validates on."""


    sampler: PatchSampler
    val_pairs: List  # fixed validation pairs (Y-PSNR every eval_interval)
    footage_val: List  # held-out footage frames: validated by agreement with the teacher (no ground truth)
    teacher: Any  # SRModel or None
    online: bool  # the teacher runs every step (feature distillation, or no label cache)
    teacher_info: Optional[Dict[str, Any]]  # what the checkpoints record of the teacher


def load_data(cfg: TrainConfig, device, dist) -> RunData:
    """Training pairs and images without ground truth (labelled once by the teacher when it is cached),
    the fixed validation pairs, held-out footage, and the teacher when it runs online."""
    main = dist.is_main
    train_images, val_images = load_images(cfg)
    labelled = [make_sample(im, cfg.scale, cfg.color) for im in train_images]
    unlabeled_images = folder_images(cfg.extra_lr, 1, cfg.patch) if cfg.extra_lr else []
    if cfg.hr_as_lr:
        unlabeled_images += train_images
    footage_train, footage_val = _footage(cfg, main)
    unlabeled = [make_sample(im, cfg.scale, cfg.color, with_hr=False) for im in unlabeled_images + footage_train]
    val_pairs = make_val_pairs(val_images, cfg.scale)
    teacher = load_teacher(cfg, device)
    online = teacher is not None and (cfg.feat_weight > 0 or (cfg.kd_weight > 0 and cfg.teacher_cache == "off"))
    cached = teacher is not None and cfg.kd_weight > 0 and not online
    if cached:
        _label(cfg, device, dist, teacher, labelled + unlabeled + footage_val, len(labelled) + len(unlabeled))
    if online and unlabeled:
        raise KdedgeError("images without ground truth need the teacher cache (teacher_cache memory or disk)")
    sampler = PatchSampler(labelled, unlabeled, cfg.patch, cfg.scale, cfg.unlabeled_ratio,
                           need_teacher=cached, need_teacher_input=online)
    info = None if teacher is None else {"spec": cfg.teacher, "arch": teacher.arch, "scale": teacher.scale,
                                         "color": teacher.color, "weights": cfg.teacher_weights or None}
    return RunData(sampler, val_pairs, footage_val, teacher, online, info)


def _footage(cfg: TrainConfig, main: bool):
    """(footage frames to train on, as Images; held-out frames, as samples without ground truth)."""
    if not cfg.footage:
        return [], []
    footage = load_footage(cfg.footage, footage_options(cfg), min_size=cfg.patch)
    if main:
        print("footage: %d frames decoded, %d sampled for training, %d held out%s"
              % (footage.read, len(footage.train), len(footage.val),
                 ("; failed: " + ", ".join(footage.failed_sources)) if footage.failed_sources else ""))
    return ([Image(f.name, f.pixels) for f in footage.train],
            [make_sample(Image(f.name, f.pixels), cfg.scale, cfg.color, with_hr=False) for f in footage.val])


def _label(cfg: TrainConfig, device, dist, teacher, samples: List, n_images: int) -> None:
    """Teacher outputs for every sample, computed once into the label cache."""
    main = dist.is_main
    cache = TeacherCache(teacher, cfg.color, mode=cfg.teacher_cache, folder=cfg.cache_dir or None, device=str(device))
    t0 = time.time()
    if cfg.teacher_cache == "disk" and dist.enabled:
        # Rank 0 labels, the others then read its files instead of repeating the work.
        if main:
            cache.fill(samples, progress=cfg.progress)
        ddp.barrier(dist)
    cache.fill(samples, progress=cfg.progress and main)
    if main and cfg.progress:
        print("teacher labels: %d images in %.1f s (%s cache, %d computed)"
              % (n_images, time.time() - t0, cfg.teacher_cache, cache.misses))


def load_images(cfg: TrainConfig):
    """(training images, validation images), with the protocol's filters applied."""
    min_size = cfg.patch * cfg.scale
    if cfg.data:
        train = folder_images(cfg.data, cfg.scale, min_size)
    else:
        train = [im for im in embedded_images() if min(im.pixels.shape[:2]) >= min_size]
    if cfg.val:
        val = folder_images([cfg.val], cfg.scale, 8 * cfg.scale)
    elif not cfg.data:
        val = [im for im in train if im.name in EMBEDDED_VAL] or train[-1:]
        train = [im for im in train if im not in val]
    else:
        n = min(cfg.val_holdout, len(train) - 1)
        val, train = (train[-n:], train[:-n]) if n > 0 else (train[-1:], train)
    if not train:
        raise KdedgeError("no training images left after filtering (need >= %d px on a side at --patch %d x%d)"
                          % (min_size, cfg.patch, cfg.scale), fix="add images, or lower --patch")
    return train, val


def load_teacher(cfg: TrainConfig, device):
    """The teacher as an SRModel (eval mode, no gradients), or None when the config has none."""
    if not cfg.teacher:
        return None
    from kdedge.models.loading import load_model

    spec = cfg.teacher
    if spec == "embedded":
        if not EMBEDDED_TEACHER.is_file():
            raise KdedgeError("the embedded teacher %s is missing from this install" % EMBEDDED_TEACHER,
                              fix="reinstall kdedge, or give --teacher (e.g. a zoo name such as imdn_x2)")
        spec = str(EMBEDDED_TEACHER)
    teacher = load_model(spec, weights=cfg.teacher_weights or None, device=str(device))
    check_teacher(teacher, cfg.scale, cfg.color, source="teacher %s" % cfg.teacher)
    for p in teacher.module.parameters():
        p.requires_grad_(False)
    return teacher.eval()
