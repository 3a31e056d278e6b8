"""MATLAB YCbCr in float: the fast plane path agrees with the formula and with the (H, W, 3) path."""
from __future__ import annotations

import numpy as np

from kdedge.runtime import colour


def _frame(seed=0, h=19, w=23):
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)


def test_y_is_matlab_rgb2ycbcr():
    f = _frame()
    rgb = f[..., ::-1].astype(np.float64) / 255.0
    want = 16 + rgb @ np.array([65.481, 128.553, 24.966])
    y01, _ = colour.split_y(f, 2)
    np.testing.assert_allclose(y01 * 255.0, want, atol=1e-3)
    np.testing.assert_allclose(colour.bgr_to_ycbcr(f)[..., 0], want, atol=1e-3)


def test_round_trip_is_lossless():
    f = _frame(1)
    np.testing.assert_array_equal(colour.ycbcr_to_bgr(colour.bgr_to_ycbcr(f)), f)
    y, cb, cr = colour.bgr_to_planes(f)
    # merging the unscaled planes must give the frame back (up to a rounding tie)
    assert np.abs(colour.merge_y(y / 255.0, (cb, cr)).astype(int) - f).max() <= 1


def test_split_merge_with_scale_matches_bicubic_rgb():
    import cv2

    f = cv2.GaussianBlur(_frame(2, 32, 40), (5, 5), 2)  # smooth: bicubic overshoot stays inside [0, 255]
    y01, chroma = colour.split_y(f, 2)
    y_up = cv2.resize(y01, (80, 64), interpolation=cv2.INTER_CUBIC)
    out = colour.merge_y(y_up, chroma)
    # bicubic is linear and the colour transform affine: the same as bicubic on BGR, up to rounding
    assert np.abs(out.astype(int) - colour.bicubic_bgr(f, 2)).max() <= 1
