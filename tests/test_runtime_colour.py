"""The model sees MATLAB's Y exactly; the uint8 chroma path around it costs at most 2 levels of BGR rounding."""
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


def test_round_trip_is_lossless_up_to_rounding():
    f = _frame(1, 64, 80)
    np.testing.assert_array_equal(colour.ycbcr_to_bgr(colour.bgr_to_ycbcr(f)), f)  # the float MATLAB forms: exact
    y01, chroma = colour.split_y(f, 1)
    err = np.abs(colour.merge_y(y01, chroma).astype(int) - f)
    # uint8 chroma and full-range Y are each rounded once: at most 2 levels, half a level on average
    assert err.max() <= 2 and err.mean() < 0.6


def test_split_merge_with_scale_matches_bicubic_rgb():
    import cv2

    f = cv2.GaussianBlur(_frame(2, 32, 40), (5, 5), 2)  # smooth: bicubic overshoot stays inside [0, 255]
    y01, chroma = colour.split_y(f, 2)
    assert chroma.shape == (64, 80, 3) and chroma.dtype == np.uint8
    y_up = cv2.resize(y01, (80, 64), interpolation=cv2.INTER_CUBIC)
    out = colour.merge_y(y_up, chroma)
    # bicubic is linear and the colour transform affine: the same as bicubic on BGR up to rounding
    # (chroma is rounded at LR and again by the uint8 resize: 3 levels at worst, ~0.04% of values)
    err = np.abs(out.astype(int) - colour.bicubic_bgr(f, 2))
    assert err.max() <= 3 and err.mean() < 0.6


def test_merge_saturates_model_overshoot():
    f = np.full((4, 4, 3), 255, np.uint8)
    y01, chroma = colour.split_y(f, 2)
    out = colour.merge_y(np.full((8, 8), 1.2, np.float32), chroma)  # a model may overshoot white
    assert out.dtype == np.uint8 and (out == 255).all()
