"""MATLAB `rgb2ycbcr` / `ycbcr2rgb` (BT.601, studio range): the Y that SR papers measure.

Y = 16 + (65.481 R + 128.553 G + 24.966 B) for R, G, B in [0, 1]; Y in [16, 235]. Results are
float64 and unrounded (as BasicSR and the IMDN evaluation compute them). Y-channel students see
Y / 255 as input. The runtime has its own float32 copy of these few lines (it may not import this
package); tests/test_runtime_colour.py checks it against the same formula.
"""
from __future__ import annotations

import numpy as np

_RGB_TO_YCBCR = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], dtype=np.float64
)
_OFFSET = np.array([16.0, 128.0, 128.0])
Y_WEIGHTS = tuple(float(v) for v in _RGB_TO_YCBCR[0])  # (65.481, 128.553, 24.966): Y = 16 + weights . RGB[0,1]


def _as_unit(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float64) / 255.0
    return rgb.astype(np.float64)


def rgb2ycbcr(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 RGB (uint8, or float in [0, 1]) -> float64 YCbCr in MATLAB's [16, 235/240] range."""
    return _as_unit(rgb) @ _RGB_TO_YCBCR.T + _OFFSET


def ycbcr2rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Inverse of rgb2ycbcr: float YCbCr in [16, 240] -> float RGB in [0, 1] (unclipped)."""
    return (ycbcr.astype(np.float64) - _OFFSET) @ np.linalg.inv(_RGB_TO_YCBCR).T


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """The Y channel only, float64 in [16, 235]."""
    return _as_unit(rgb) @ _RGB_TO_YCBCR[0] + 16.0


def gray_to_y(gray: np.ndarray, convention: str = "gray-as-y") -> np.ndarray:
    """Y of a single-channel image under one of the two published conventions.

    "gray-as-y": the grey values are the Y channel (the published bicubic Set14 figure).
    "gray-as-rgb": replicate to RGB, then MATLAB Y (BasicSR; about +0.1 dB on Set14 for SR models).
    """
    gray = gray.astype(np.float64)
    if convention == "gray-as-y":
        return gray
    if convention == "gray-as-rgb":
        return 16.0 + gray * (219.0 / 255.0)
    raise ValueError("unknown grayscale convention %r (gray-as-y or gray-as-rgb)" % convention)
