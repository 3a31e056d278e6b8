"""Calibration: the four methods give different ranges; bad calibration folders are clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from kdedge.errors import KdedgeError

pytest.importorskip("onnxruntime")


def _stats(values: np.ndarray):
    from kdedge.export.calibrate import HIST_BINS, TensorStats

    s = TensorStats("t", low=float(values.min()), high=float(values.max()), count=values.size)
    s.amax = max(abs(s.low), abs(s.high))
    s.hist = np.histogram(values, bins=2 * HIST_BINS, range=(-s.amax, s.amax))[0].astype(np.float64)
    return s


def test_methods_differ_on_a_heavy_tailed_tensor():
    from kdedge.export.calibrate import METHODS, ranges

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.laplace(0, 0.05, 200_000), [2.0, -1.5]])  # two outliers far out
    s = _stats(values)
    got = {m: ranges({"t": s}, m)["t"] for m in METHODS}
    for m, (lo, hi) in got.items():
        assert lo == -hi and hi > 0, m  # symmetric
    amax = {m: got[m][1] for m in METHODS}
    assert amax["minmax"] == pytest.approx(2.0)
    assert amax["percentile"] < 0.7  # 99.99th percentile of |Laplace(0.05)| is ~0.46
    assert amax["entropy"] < 0.7
    assert amax["percentile"] < amax["mse"] < amax["minmax"]  # MSE pays for clipping the two outliers
    assert len({round(v, 4) for v in amax.values()}) == 4, amax  # four different answers
    lo, hi = ranges({"t": s}, "minmax", symmetric=False)["t"]
    assert (lo, hi) == (pytest.approx(-1.5), pytest.approx(2.0))


def test_collect_statistics_on_a_model(tmp_path):
    from test_export_helpers import smooth_images, tiny_anchor

    from kdedge.export.calibrate import collect_statistics, ranges
    from kdedge.export.onnx_export import export_onnx

    path = export_onnx(tiny_anchor(), tmp_path / "m.onnx")
    inputs = [im[None, None] for im in smooth_images(4)]
    stats = collect_statistics(path, inputs)
    assert "lr" in stats and "sr" in stats and len(stats) >= 8
    assert stats["lr"].low == pytest.approx(min(float(x.min()) for x in inputs))
    assert stats["lr"].hist.sum() == sum(x.size for x in inputs)
    a, b = ranges(stats, "minmax"), ranges(stats, "entropy")
    assert any(abs(a[k][1] - b[k][1]) > 1e-3 for k in a)


def _write_images(folder, n, size=64, seed=0):
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        cv2.imwrite(str(folder / ("im%02d.png" % i)), (rng.random((size, size, 3)) * 255).astype(np.uint8))
    return folder


def test_bad_calibration_folders(tmp_path):
    from kdedge.export.calibrate import list_images, lr_inputs, read_images

    with pytest.raises(KdedgeError, match="does not exist"):
        list_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(KdedgeError, match="holds no images"):
        list_images(tmp_path / "empty")
    corrupt = _write_images(tmp_path / "corrupt", 9)
    (corrupt / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(KdedgeError, match="broken.png"):
        read_images(list_images(corrupt))
    images = read_images(list_images(_write_images(tmp_path / "ok", 8)))
    inputs = lr_inputs(images, 2, "y")
    assert len(inputs) == 8 and inputs[0].shape == (1, 1, 32, 32) and inputs[0].dtype == np.float32
    assert lr_inputs(images, 2, "rgb")[0].shape == (1, 3, 32, 32)
