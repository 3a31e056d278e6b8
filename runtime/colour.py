"""Colour handling for Y-channel SR: MATLAB's Y for the model, uint8 chroma around it.

The students see Y/255 of MATLAB's `rgb2ycbcr` (Y = 16 + 65.481 R + 128.553 G + 24.966 B, RGB in
[0,1]), the same Y the evaluation protocol measures, computed in float. Chroma never meets the
model (the eye barely sees chroma detail, so SR on Y is a third of the work for nearly all the
quality): it stays uint8 in OpenCV's full-range BT.601 YCrCb, is upscaled with OpenCV bicubic, and
the model's Y is mapped into the same full range (studio Y 16..235 -> 0..255, the only difference
between the two BT.601 forms) so `cvtColor` can turn the result back into BGR. Integer SIMD paths
all the way: split + merge of a 540x960 frame took 30 ms instead of 51 ms with float Cb/Cr planes
(one core, interleaved A/B on a busy machine), at the price of BGR rounding: 0.5 levels on average, 3 at worst (tests/test_runtime_colour.py;
the Y the model makes is untouched, and quality figures are measured on it, never on this path).
The (H, W, 3) float forms (bgr_to_ycbcr, ycbcr_to_bgr) are MATLAB's exactly and serve tests and metrics.
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


def luma01(frame: np.ndarray) -> np.ndarray:
    """uint8 BGR -> MATLAB Y / 255 as a contiguous float32 (H, W) plane: the model's input.
    Two fused OpenCV passes (cv2.addWeighted then cv2.scaleAdd) instead of a 3x3 float transform."""
    import cv2

    b, g, r = cv2.split(frame)
    m = _RGB2YCC[0] / (255.0 * 255.0)  # RGB in 0..255, Y/255 out
    t = cv2.addWeighted(r, m[0], g, m[1], _OFFSET[0] / 255.0, dtype=cv2.CV_32F)
    return cv2.scaleAdd(b.astype(np.float32), m[2], t)


def split_y(frame: np.ndarray, scale: int) -> Tuple[np.ndarray, np.ndarray]:
    """BGR frame -> (Y/255 as (H, W) float32 for the model, the frame's full-range YCrCb bicubic-upscaled
    to (sH, sW, 3) uint8, whose Y plane `merge_y` replaces with the model's)."""
    import cv2

    h, w = frame.shape[:2]
    ycrcb = cv2.cvtColor(frame, cv2.COLOR_BGR2YCrCb)
    # one interleaved 3-channel uint8 resize beats two single-plane ones (measured); Y rides along unused
    up = cv2.resize(ycrcb, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
    return luma01(frame), up


# studio-range Y/255 (what the model outputs) -> full-range Y in 0..255: (255 y - 16) * 255 / 219
_Y_GAIN = 255.0 * 255.0 / 219.0
_Y_BIAS = -16.0 * 255.0 / 219.0


def merge_y(y_sr: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """(sH, sW) Y/255 from the model + the upscaled YCrCb of `split_y` -> BGR uint8.

    The model's Y is mapped to full range and rounded to uint8 with saturation in one
    cv2.addWeighted, written into the chroma image's Y plane (which it consumes), and converted by
    cv2.cvtColor's integer YCrCb -> BGR.
    """
    import cv2

    y_sr = y_sr.astype(np.float32, copy=False)
    y8 = cv2.addWeighted(y_sr, _Y_GAIN, y_sr, 0.0, _Y_BIAS, dtype=cv2.CV_8U)
    cv2.insertChannel(y8, chroma, 0)
    return cv2.cvtColor(chroma, cv2.COLOR_YCrCb2BGR)


def bicubic_bgr(frame: np.ndarray, scale: int) -> np.ndarray:
    """The baseline every SR result is shown next to: OpenCV bicubic on BGR."""
    import cv2

    h, w = frame.shape[:2]
    return cv2.resize(frame, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
