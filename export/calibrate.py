"""Step 2 of `kdedge export`: calibration images -> the range of every activation tensor, four ways.

Why the ranges are computed here and not by `onnxruntime.quantization.quantize_static`: its Entropy
method silently gets MinMax's result (it never passes `num_bins`/`num_quantized_bins` to the
calibrator; measured, ENVIRONMENT.md), and its calibrators keep asymmetric histograms while
TensorRT's INT8 is symmetric. So we run the FP32 model on the runtime's ONNX Runtime backend with
every float tensor made a graph output, and build, per tensor, a histogram of its signed values (2
passes: the first finds max |x|, the second fills 2 x 2048 bins over [-max|x|, max|x|]). From one
histogram:

- `minmax`: max |x| (asymmetric: min and max);
- `percentile`: the `percentile`-th percentile of |x| (99.99 by default; asymmetric: of each side);
- `entropy`: TensorRT's KL-divergence threshold search (reference 2048 bins onto 128 levels);
- `mse`: the clipping threshold that minimises the expected squared quantisation error.

`ranges(stats, method)` returns {tensor: (low, high)}; symmetric ones have low = -high.
Calibration inputs are the LR images the model will see: each HR calibration image is mod-cropped,
MATLAB-bicubic downscaled (the evaluation protocol), and turned into Y/255 or RGB/255.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from kdedge.errors import KdedgeError

METHODS = ("minmax", "percentile", "entropy", "mse")
DEFAULT_METHOD = "percentile"
DEFAULT_PERCENTILE = 99.99
HIST_BINS = 2048  # per sign: TensorRT's entropy calibrator uses 2048 bins of |x| too
_LEVELS = 127  # symmetric int8: -127..127 (TensorRT never uses -128)


def default_calib_dir() -> Path:
    """The repository's calib_data/ folder (shipped next to the package in a source checkout)."""
    return Path(__file__).resolve().parent.parent / "calib_data"


def model_input(image: np.ndarray, color: str) -> np.ndarray:
    """One uint8 LR image (H x W or H x W x 3 RGB) -> float32 1 x C x H x W in [0, 1], as eval feeds it."""
    from kdedge.data.color import gray_to_y, rgb2ycbcr

    if color == "y":
        y = gray_to_y(image) if image.ndim == 2 else rgb2ycbcr(image)[..., 0]
        return (y / 255.0).astype(np.float32)[None, None]
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
    return (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None].copy()


def list_images(folder, what: str = "calibration") -> List[Path]:
    """Image files of a folder; KdedgeError when the folder is missing, not a folder, or holds none."""
    from kdedge.common import IMAGE_EXTENSIONS

    folder = Path(folder)
    if not folder.exists():
        raise KdedgeError("%s folder %s does not exist" % (what, folder),
                          fix="pass --calib DIR with a few dozen photos, or omit it to use the shipped calib_data/")
    if not folder.is_dir():
        raise KdedgeError("%s path %s is not a folder" % (what, folder), fix="pass a folder of images")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise KdedgeError("%s folder %s holds no images (%s)" % (what, folder, ", ".join(IMAGE_EXTENSIONS)),
                          fix="put PNG/JPEG photos like the ones the model will upscale in it")
    return paths


def read_images(paths: Sequence[Path], what: str = "calibration") -> List[np.ndarray]:
    """Read every file; a corrupt one is an error naming it (a skipped file would silently shift ranges)."""
    from kdedge.data.images import read_image

    images, bad = [], []
    for p in paths:
        try:
            images.append(read_image(p))
        except KdedgeError:
            bad.append(p.name)
    if bad:
        raise KdedgeError("%s images that cannot be read in %s: %s" % (what, Path(paths[0]).parent, ", ".join(bad)),
                          fix="remove or re-save those files (PNG or JPEG)")
    return images


def lr_inputs(images: Sequence[np.ndarray], scale: int, color: str, max_side: int = 0) -> List[np.ndarray]:
    """HR uint8 images -> model inputs (protocol LR), optionally centre-cropped to `max_side` LR pixels."""
    from kdedge.data.imresize import bicubic_downscale

    out = []
    for hr in images:
        lr = bicubic_downscale(hr, scale)
        if max_side:
            h, w = lr.shape[:2]
            top, left = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
            lr = lr[top: top + max_side, left: left + max_side]
        out.append(model_input(lr, color))
    return out


# ---------------------------------------------------------------------------------------------
# statistics


@dataclass
class TensorStats:
    """Signed histogram of one activation tensor over [-amax, amax] (2 * HIST_BINS bins)."""

    name: str
    amax: float = 0.0
    low: float = np.inf
    high: float = -np.inf
    hist: Optional[np.ndarray] = None
    count: int = 0
    extra: Dict[str, float] = field(default_factory=dict)

    def abs_hist(self) -> np.ndarray:
        """Histogram of |x| on HIST_BINS bins over [0, amax] (folds the two signs)."""
        return self.hist[HIST_BINS:][:] + self.hist[:HIST_BINS][::-1]


def float_tensors(proto) -> List[str]:
    """Names of every float activation (graph inputs and node outputs, not weights), in graph order."""
    import onnx
    from onnx import TensorProto

    inferred = onnx.shape_inference.infer_shapes(proto)
    types = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        types[vi.name] = vi.type.tensor_type.elem_type
    weights = {i.name for i in proto.graph.initializer}
    names = [i.name for i in proto.graph.input if i.name not in weights]
    for node in proto.graph.node:
        if node.op_type == "Constant":
            continue
        names.extend(o for o in node.output if o)
    return [n for n in dict.fromkeys(names) if types.get(n, TensorProto.FLOAT) == TensorProto.FLOAT]


def collect_statistics(onnx_path, inputs: Sequence[np.ndarray], input_name: str = "lr") -> Dict[str, TensorStats]:
    """Run `inputs` through the FP32 model twice and histogram every float activation.

    The model runs on the runtime's ONNX Runtime backend (`open_onnx`), with every float tensor made a
    graph output: calibration needs all intermediate values at once, which ORT gives in one run."""
    import onnx
    from onnx import TensorProto, helper

    from kdedge.export.onnx_export import open_onnx

    proto = onnx.load(str(onnx_path))
    tensors = float_tensors(proto)
    present = {o.name for o in proto.graph.output}
    for name in tensors:
        if name not in present:
            proto.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    wanted = set(tensors)
    stats = {}  # type: Dict[str, TensorStats]  # in the session's output order
    with open_onnx(proto, "ort-cpu") as be:
        for x in inputs:  # pass 1: extent of every tensor
            for name, value in be.infer({input_name: x}).items():
                if name not in wanted:
                    continue
                s = stats.setdefault(name, TensorStats(name))
                s.low = min(s.low, float(value.min()))
                s.high = max(s.high, float(value.max()))
                s.count += value.size
        for s in stats.values():
            s.amax = max(abs(s.low), abs(s.high), 1e-8)
            s.hist = np.zeros(2 * HIST_BINS, np.float64)
        for x in inputs:  # pass 2: histograms on the final extent (no re-binning needed)
            for name, value in be.infer({input_name: x}).items():
                if name not in stats:
                    continue
                s = stats[name]
                h, _ = np.histogram(value, bins=2 * HIST_BINS, range=(-s.amax, s.amax))
                s.hist += h
    return stats


# ---------------------------------------------------------------------------------------------
# range selection


def _percentile_amax(s: TensorStats, pct: float) -> float:
    h = s.abs_hist()
    cdf = np.cumsum(h) / max(h.sum(), 1)
    i = int(np.searchsorted(cdf, pct / 100.0))
    return min(s.amax, (i + 1) * s.amax / HIST_BINS)


def _smooth(p: np.ndarray, eps: float = 1e-4) -> Optional[np.ndarray]:
    """Give empty bins a little mass taken from the others (MXNet/TVM's entropy calibration does this)."""
    zeros = p == 0
    nz = int((~zeros).sum())
    if nz == 0:
        return None
    take = eps * zeros.sum() / nz
    if take >= 1.0:
        return None
    return np.maximum(p + eps * zeros - take * (~zeros), 1e-12)  # a tiny bin could go negative


def _entropy_amax(s: TensorStats, levels: int = _LEVELS + 1, max_candidates: int = 256) -> float:
    """TensorRT's calibration: the |x| threshold minimising KL(P || Q) of the clipped histogram.

    P = the first i bins of |x| with the clipped tail added to the last; Q = those i bins merged into
    `levels` groups and spread back uniformly over each group's non-empty bins. Candidates i are
    strided so at most `max_candidates` are scored (numpy, no per-bin Python loop).
    """
    h = s.abs_hist().copy()
    # ReLU outputs put half their mass in the zero bin; that spike dominates the divergence and drives
    # the threshold far too low (measured: 5.8 dB lost on the default student). NVIDIA's
    # pytorch-quantization entropy calibrator flattens it the same way (bins[0] = bins[1]).
    if len(h) > 1:
        h[0] = h[1]
    nz = np.nonzero(h)[0]
    if len(nz) == 0:
        return s.amax
    last = int(nz[-1]) + 1
    if last <= levels:
        return last * s.amax / HIST_BINS
    stride = max(1, (last - levels) // max_candidates)
    best_i, best_kl = last, np.inf
    for i in range(levels, last + 1, stride):
        src = h[:i]
        p = src.copy()
        p[i - 1] += h[i:].sum()
        group = (np.arange(i) * levels) // i  # which quantised level each bin falls in
        nonempty = (src > 0).astype(np.float64)
        mass = np.bincount(group, weights=src, minlength=levels)
        count = np.bincount(group, weights=nonempty, minlength=levels)
        q = np.where(nonempty > 0, mass[group] / np.maximum(count[group], 1), 0.0)
        if q.sum() == 0:
            continue  # all mass beyond bin i: this threshold clips everything
        ps, qs = _smooth(p / p.sum()), _smooth(q / q.sum())
        if ps is None or qs is None:
            continue
        kl = float(np.sum(ps * np.log(ps / qs)))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return min(s.amax, (best_i + 0.5) * s.amax / HIST_BINS)


def _mse_amax(s: TensorStats, candidates: int = 200) -> float:
    """Threshold minimising expected error: s^2/12 rounding inside the range plus clipping outside."""
    h = s.abs_hist()
    centres = (np.arange(HIST_BINS) + 0.5) * s.amax / HIST_BINS
    best, best_err = s.amax, np.inf
    for t in np.linspace(s.amax / candidates, s.amax, candidates):
        step = t / _LEVELS
        inside = centres <= t
        err = h[inside].sum() * step * step / 12.0 + np.sum(h[~inside] * (centres[~inside] - t) ** 2)
        if err < best_err:
            best, best_err = float(t), err
    return best


MIN_SAMPLES = 4096  # fewer values than this (pooled attention vectors...) are no distribution to clip


def symmetric_amax(s: TensorStats, method: str, percentile: float = DEFAULT_PERCENTILE) -> float:
    if method == "minmax" or (method in METHODS and s.count < MIN_SAMPLES):
        # Too few samples for a histogram method: clipping them would clip real values (measured on
        # IMDN's channel-attention vectors: entropy thresholds from 2k values cost 12 dB).
        return s.amax
    if method == "percentile":
        return _percentile_amax(s, percentile)
    if method == "entropy":
        return _entropy_amax(s)
    if method == "mse":
        return _mse_amax(s)
    raise KdedgeError("unknown calibration method %r" % method, fix="choose one of: %s" % ", ".join(METHODS))


def ranges(stats: Dict[str, TensorStats], method: str = DEFAULT_METHOD, symmetric: bool = True,
           percentile: float = DEFAULT_PERCENTILE) -> Dict[str, Tuple[float, float]]:
    """{tensor: (low, high)} for every tensor. Symmetric: (-t, t) with t from `method`.

    Asymmetric (the U8S8 ORT variant): min/max for minmax, per-side percentiles for percentile;
    entropy and mse scale the min/max range by the same factor their symmetric threshold shrinks it.
    """
    if method not in METHODS:
        raise KdedgeError("unknown calibration method %r" % method, fix="choose one of: %s" % ", ".join(METHODS))
    out = {}
    for name, s in stats.items():
        t = max(symmetric_amax(s, method, percentile), 1e-8)
        if symmetric:
            out[name] = (-t, t)
            continue
        low, high = min(s.low, 0.0), max(s.high, 0.0)
        if method == "percentile":
            cdf = np.cumsum(s.hist) / max(s.hist.sum(), 1)
            edges = np.linspace(-s.amax, s.amax, 2 * HIST_BINS + 1)
            tail = (1 - percentile / 100.0) / 2
            low = min(0.0, float(edges[int(np.searchsorted(cdf, tail))]))
            high = max(0.0, float(edges[min(2 * HIST_BINS, int(np.searchsorted(cdf, 1 - tail)) + 1)]))
        elif method in ("entropy", "mse"):
            f = t / s.amax
            low, high = low * f, high * f
        out[name] = (low, high)
    return out
