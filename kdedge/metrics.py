"""PSNR and SSIM exactly as SR papers compute them (the protocol lives here, once).

Both take Y channels as float arrays in [0, 255] (see `kdedge.data.color`), shave `shave` pixels
off every border first (shave = scale in the standard protocol), and use data range 255. SSIM is
Wang et al.'s with an 11x11 Gaussian window (sigma 1.5), valid region only, K1 = 0.01, K2 = 0.03,
the MATLAB `ssim_index` reference that BasicSR and the published tables follow. The comparisons
built on such numbers sit beside them: temporal flicker and motion ratio of a video, the window where
two outputs differ most, the Pareto front of (speed, quality) points (footage tools, benchmarks).
"""
from __future__ import annotations

import numpy as np


def shave_border(img: np.ndarray, shave: int) -> np.ndarray:
    return img[shave:-shave, shave:-shave] if shave > 0 else img


def psnr(a: np.ndarray, b: np.ndarray, shave: int = 0, data_range: float = 255.0) -> float:
    if a.shape != b.shape:
        raise ValueError("PSNR of arrays of different shapes %s and %s" % (a.shape, b.shape))
    a = shave_border(a.astype(np.float64), shave)
    b = shave_border(b.astype(np.float64), shave)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(data_range ** 2 / mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(ax ** 2) / (2 * sigma ** 2))
    g /= g.sum()
    return np.outer(g, g)


def ssim(a: np.ndarray, b: np.ndarray, shave: int = 0, data_range: float = 255.0) -> float:
    import cv2

    if a.shape != b.shape:
        raise ValueError("SSIM of arrays of different shapes %s and %s" % (a.shape, b.shape))
    a = shave_border(a.astype(np.float64), shave)
    b = shave_border(b.astype(np.float64), shave)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    win = _gaussian_window()

    def filt(x):  # 'valid' filtering, as MATLAB's filter2(..., 'valid')
        return cv2.filter2D(x, -1, win)[5:-5, 5:-5]

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a ** 2
    var_b = filt(b * b) - mu_b ** 2
    cov = filt(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def temporal_flicker(out: "list[np.ndarray]", ref: "list[np.ndarray]", shave: int = 0) -> np.ndarray:
    """Per-step flicker of a video against a reference (usually the ground truth or the teacher):
    flicker(t) = mean |(out_t - out_{t-1}) - (ref_t - ref_{t-1})| over Y in [0, 255], for t = 1..T-1.

    0 means the output changes from frame to frame exactly as the reference does; temporal noise
    that the reference does not have (shimmering edges, crawling texture) raises it.
    """
    if len(out) != len(ref):
        raise ValueError("flicker needs as many output frames as reference frames (%d vs %d)" % (len(out), len(ref)))
    values = []
    for t in range(1, len(out)):
        d_out = shave_border(out[t].astype(np.float64) - out[t - 1].astype(np.float64), shave)
        d_ref = shave_border(ref[t].astype(np.float64) - ref[t - 1].astype(np.float64), shave)
        values.append(float(np.mean(np.abs(d_out - d_ref))))
    return np.array(values)


def motion_ratio(out: "list[np.ndarray]", ref: "list[np.ndarray]", shave: int = 0) -> np.ndarray:
    """mean|out_t - out_{t-1}| / mean|ref_t - ref_{t-1}| for t = 1..T-1: whether the output moves more
    (> 1, flicker) or less (< 1, smoothing) than the reference, the companion of `temporal_flicker`."""
    res = []
    for t in range(1, len(out)):
        a = shave_border(np.abs(out[t].astype(np.float64) - out[t - 1]), shave)
        b = shave_border(np.abs(ref[t].astype(np.float64) - ref[t - 1]), shave)
        res.append(a.mean() / max(b.mean(), 1e-12))
    return np.asarray(res)


def best_window(a: np.ndarray, b: np.ndarray, crop: int, stride: int = 8) -> "tuple[int, int]":
    """Top-left (y, x) of the crop x crop window where |a - b| (2-D) is largest, on a stride grid
    (box sums of an integral image): where two outputs differ most, for side-by-side crops."""
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    ii = np.pad(d.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = d.shape
    best, where = -1.0, (0, 0)
    for y in range(0, max(1, h - crop + 1), stride):
        for x in range(0, max(1, w - crop + 1), stride):
            s = ii[y + crop, x + crop] - ii[y, x + crop] - ii[y + crop, x] + ii[y, x]
            if s > best:
                best, where = s, (y, x)
    return where


def pareto_front(points: "list[tuple[float, float]]") -> "list[int]":
    """Indices of the (x, y) points no other point dominates (higher is better on both, e.g. FPS and
    PSNR), ordered by x: the models worth choosing between."""
    idx = []
    for i, (x, y) in enumerate(points):
        dominated = any((x2 >= x and y2 >= y) and (x2 > x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i)
        if not dominated:
            idx.append(i)
    return sorted(idx, key=lambda i: points[i][0])
