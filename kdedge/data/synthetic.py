"""Synthetic text-and-graphics images: the screen, slide and signage content natural photos lack.

Why: learned INT8 ranges fitted on natural photos (T91, BSD200) clip the large activations that
sharp, saturated edges produce. On Set14's `ppt3` (a slide) the QAT default lost 0.51 dB in
symmetric INT8 against 0.03 with unclipped ranges, while natural images lose 0.002-0.14
(benchmarks/experiments/results/qat_graphics.md). Cameras film screens, slides and signs, so the
INT8 student has to see such edges while its ranges are learned. OpenCV draws them (text in its
Hershey fonts, boxes, lines, discs, flat fills, aliased and anti-aliased); a seed makes every image
reproducible, so a validation set drawn with another seed never overlaps the training one.
"""
from __future__ import annotations

import string
from typing import List

import numpy as np

FONTS = ("FONT_HERSHEY_SIMPLEX", "FONT_HERSHEY_PLAIN", "FONT_HERSHEY_DUPLEX", "FONT_HERSHEY_COMPLEX",
         "FONT_HERSHEY_TRIPLEX", "FONT_HERSHEY_SCRIPT_SIMPLEX")
CHARS = string.ascii_letters + string.digits + " .,:-%/()"


def graphics_image(rng: np.random.Generator, size: int = 512) -> np.ndarray:
    """One uint8 size x size x 3 RGB image of text, shapes and flat colour on a plain background."""
    import cv2

    light = rng.random() < 0.7  # slides and documents are mostly dark on light
    bg = rng.integers(215, 256, 3) if light else rng.integers(0, 60, 3)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = bg
    if rng.random() < 0.3:  # a title bar or panel of another flat colour
        y0, y1 = sorted(rng.integers(0, size, 2))
        img[y0:y1] = rng.integers(0, 256, 3)

    def ink():
        if rng.random() < 0.5:  # high contrast to the background, like most text
            return tuple(int(v) for v in (rng.integers(0, 50, 3) if light else rng.integers(200, 256, 3)))
        return tuple(int(v) for v in rng.integers(0, 256, 3))

    def aa():
        return cv2.LINE_AA if rng.random() < 0.6 else cv2.LINE_8

    for _ in range(int(rng.integers(2, 6))):  # shapes
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        p2 = tuple(int(v) for v in rng.integers(0, size, 2))
        kind = rng.integers(0, 3)
        thick = -1 if rng.random() < 0.4 else int(rng.integers(1, 5))
        if kind == 0:
            cv2.rectangle(img, p1, p2, ink(), thick, aa())
        elif kind == 1:
            cv2.line(img, p1, p2, ink(), max(thick, 1), aa())
        else:
            cv2.circle(img, p1, int(rng.integers(4, size // 6)), ink(), thick, aa())
    for _ in range(int(rng.integers(4, 14))):  # lines of text, 6 to 60 px high
        text = "".join(rng.choice(list(CHARS), int(rng.integers(4, 30))))
        font = getattr(cv2, FONTS[int(rng.integers(0, len(FONTS)))])
        scale = float(rng.uniform(0.3, 2.2))
        org = (int(rng.integers(-size // 8, size - 16)), int(rng.integers(12, size)))
        cv2.putText(img, text, org, font, scale, ink(), int(rng.integers(1, 4)), aa())
    return img


def graphics_images(count: int, size: int = 512, seed: int = 0) -> List[np.ndarray]:
    """`count` reproducible images: the same seed draws the same shapes and text everywhere; the pixels
    can differ slightly between OpenCV versions (its text and anti-aliasing rasterizers change)."""
    rng = np.random.default_rng([seed, 0x6A7])
    return [graphics_image(rng, size) for _ in range(count)]
