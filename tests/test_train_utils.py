"""Tiny data sets and configs for the trainer tests (a few 48-64 px images, 4-8 px wide students)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def make_images(folder: Path, n: int = 4, size: int = 48, seed: int = 0, gray: int = 0) -> Path:
    """Smooth random RGB images (noise upsampled), so a student has something learnable."""
    from kdedge.data.images import write_image
    from kdedge.data.imresize import imresize

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.integers(0, 256, size=(size // 4, size // 4 + 2, 3)).astype(np.uint8)
        img = imresize(small, output_shape=(size, size + 8))
        if i < gray:
            img = img[..., 0]
        write_image(folder / ("img%02d.png" % i), img)
    return folder


def tiny_config(tmp_path: Path, **overrides):
    from kdedge.distill.config import from_dict

    data = make_images(tmp_path / "data")
    values = dict(data=[str(data)], student="anchor", width=4, depth=1, patch=8, batch=4, steps=6,
                  eval_interval=3, log_interval=1, val_holdout=1, progress=False, plot=True, threads=1,
                  out=str(tmp_path / "run"))
    values.update(overrides)
    return from_dict(values)
