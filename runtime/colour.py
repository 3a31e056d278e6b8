"""Colour handling for Y-channel SR: MATLAB rgb2ycbcr in float, bicubic chroma, and back.

The students see Y/255 of MATLAB's `rgb2ycbcr` (Y = 16 + 65.481 R + 128.553 G + 24.966 B, RGB in
[0,1]), the same Y the evaluation protocol measures; chroma is upscaled with OpenCV bicubic (the
eye barely sees chroma detail, so SR on Y is a third of the work for nearly all the quality).
The frame-rate path (split_y, merge_y) works on separate planes with cv2.addWeighted; the (H, W, 3)
forms (bgr_to_ycbcr, ycbcr_to_bgr) use cv2.transform and serve tests and metrics.
Frames are OpenCV BGR uint8.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

# MATLAB rgb2ycbcr for RGB in [0, 1] -> YCbCr in [16, 235/240] (ITU-R BT.601)
_RGB2YCC = np.array([
    [65.481, 128.553, 24.966],
    [-37.797, -74.203, 112.0],
    [112.0, -93.786, -18.214],
], np.float64)
_OFFSET = np.array([16.0, 128.0, 128.0])

# Acting on BGR uint8 (0..255): reorder columns and fold in the /255.
_FWD = np.hstack([_RGB2YCC[:, ::-1] / 255.0, _OFFSET[:, None]]).astype(np.float32)
# Inverse, producing BGR in 0..255 from YCbCr.
_INV_RGB = np.linalg.inv(_RGB2YCC) * 255.0
_INV = np.hstack([_INV_RGB[::-1], (-_INV_RGB[::-1] @ _OFFSET)[:, None]]).astype(np.float32)


def bgr_to_ycbcr(frame: np.ndarray) -> np.ndarray:
    """uint8 BGR (H, W, 3) -> float32 YCbCr (H, W, 3), MATLAB scale (Y in [16, 235])."""
    import cv2

    return cv2.transform(frame.astype(np.float32), _FWD)


def ycbcr_to_bgr(ycc: np.ndarray) -> np.ndarray:
    """float32 YCbCr (H, W, 3) -> uint8 BGR, rounded and clipped like MATLAB's im2uint8."""
    import cv2

    bgr = cv2.transform(ycc, _INV)
    return np.clip(bgr + 0.5, 0, 255).astype(np.uint8)  # +0.5 then truncate = round half up, no extra array


def bgr_to_planes(frame: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 BGR -> contiguous float32 Y, Cb, Cr planes (MATLAB scale). Separate planes because
    OpenCV resizes a single float plane about 3x faster than an interleaved two-channel image
    (measured here), and cv2.addWeighted fuses scale, add and offset in one pass."""
    import cv2

    b, g, r = cv2.split(frame)
    bf = b.astype(np.float32)
    out = []
    for i in range(3):
        m = _RGB2YCC[i] / 255.0
        t = cv2.addWeighted(r, m[0], g, m[1], _OFFSET[i], dtype=cv2.CV_32F)
        out.append(cv2.scaleAdd(bf, m[2], t))
    return out[0], out[1], out[2]


def split_y(frame: np.ndarray, scale: int) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """BGR frame -> (Y/255 as (H, W) float32 for the model, (Cb, Cr) bicubic-upscaled to (sH, sW))."""
    import cv2

    y, cb, cr = bgr_to_planes(frame)
    h, w = frame.shape[:2]
    size = (w * scale, h * scale)
    up = tuple(cv2.resize(c, size, interpolation=cv2.INTER_CUBIC) for c in (cb, cr))
    return y * np.float32(1.0 / 255.0), up


# YCbCr -> RGB: the Y coefficient is the same for R, G and B (255/219 per unit of Y)
_INV_YCC = np.linalg.inv(_RGB2YCC) * 255.0  # rows R, G, B; columns Y, Cb, Cr
_INV_OFF = -_INV_YCC @ _OFFSET


def merge_y(y_sr: np.ndarray, chroma: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(sH, sW) Y/255 from the model + upscaled (Cb, Cr) -> BGR uint8.

    Each output channel is one or two cv2.addWeighted calls that write uint8 directly with
    rounding and saturation (what MATLAB's ycbcr2rgb + im2uint8 do): about 5x faster than a float
    3x3 transform followed by numpy clip and cast.
    """
    import cv2

    cb, cr = chroma
    y_sr = y_sr.astype(np.float32, copy=False)
    ky = float(_INV_YCC[0, 0] * 255.0)  # the model's Y is Y/255
    inv, off = _INV_YCC, _INV_OFF
    b = cv2.addWeighted(y_sr, ky, cb, float(inv[2, 1]), float(off[2]), dtype=cv2.CV_8U)
    r = cv2.addWeighted(y_sr, ky, cr, float(inv[0, 2]), float(off[0]), dtype=cv2.CV_8U)
    g_chroma = cv2.addWeighted(cb, float(inv[1, 1]), cr, float(inv[1, 2]), float(off[1]))
    g = cv2.addWeighted(y_sr, ky, g_chroma, 1.0, 0.0, dtype=cv2.CV_8U)
    return cv2.merge([b, g, r])


def bicubic_bgr(frame: np.ndarray, scale: int) -> np.ndarray:
    """The baseline every SR result is shown next to: OpenCV bicubic on BGR."""
    import cv2

    h, w = frame.shape[:2]
    return cv2.resize(frame, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
