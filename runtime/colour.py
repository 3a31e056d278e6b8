"""Colour handling for Y-channel SR: MATLAB rgb2ycbcr in float, bicubic chroma, and back.

The students see Y/255 of MATLAB's `rgb2ycbcr` (Y = 16 + 65.481 R + 128.553 G + 24.966 B, RGB in
[0,1]), the same Y the evaluation protocol measures; chroma is upscaled with OpenCV bicubic (the
eye barely sees chroma detail, so SR on Y is a third of the work for nearly all the quality).
Conversions use cv2.transform with a 3x4 affine matrix: one pass over the frame, no temporaries.
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


def split_y(frame: np.ndarray, scale: int) -> Tuple[np.ndarray, np.ndarray]:
    """BGR frame -> (Y/255 as (H, W) float32 for the model, CbCr bicubic-upscaled (sH, sW, 2))."""
    import cv2

    ycc = bgr_to_ycbcr(frame)
    y = ycc[..., 0] * (1.0 / 255.0)
    h, w = frame.shape[:2]
    cbcr = cv2.resize(np.ascontiguousarray(ycc[..., 1:]), (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
    return y, cbcr


def merge_y(y_sr: np.ndarray, cbcr_up: np.ndarray) -> np.ndarray:
    """(sH, sW) Y/255 from the model + upscaled CbCr -> BGR uint8."""
    import cv2

    y = y_sr * 255.0
    return ycbcr_to_bgr(cv2.merge([y.astype(np.float32, copy=False), cbcr_up[..., 0], cbcr_up[..., 1]]))


def bicubic_bgr(frame: np.ndarray, scale: int) -> np.ndarray:
    """The baseline every SR result is shown next to: OpenCV bicubic on BGR."""
    import cv2

    h, w = frame.shape[:2]
    return cv2.resize(frame, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
