"""Each benchmark row as (a) an upscaler for `kdedge.evaluate.evaluate` and (b) an ONNX file for ORT timing.

Quality goes through kdedge's one evaluation function for every row, so every PSNR is measured the
same way. OpenCV's FSRCNN is wrapped twice: `OpenCvUpsample` is `DnnSuperResImpl.upsample` itself
(BGR uint8 in and out, the row of the tables), `OpenCvFsrcnn` feeds the bare network MATLAB Y / 255
(the same 1 x 1 x H x W blob layout dnn_superres builds) and is what "model-only" timing runs. Torch rows (published teachers, the
no-teacher twin) are exported once to ONNX with kdedge's own exporter into `benchmarks/.cache/`
(keyed by the weights' sha256) so that their speed is measured on the same runtime as kdedge's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from common import CACHE, SCALE, THREADS, Row
from kdedge.common import sha256_file


class OpenCvFsrcnn:
    """dnn_superres's FSRCNN network (OpenCV dnn, its own runtime) behind kdedge's upscaler interface."""

    color = "y"

    def __init__(self, pb_path: str, scale: int = SCALE, name: Optional[str] = None):
        import cv2

        from macs import _read_pb

        cv2.setNumThreads(THREADS)
        self.net = _read_pb(pb_path)
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self.scale = scale
        self.name = name or Path(pb_path).stem

    def __call__(self, x: np.ndarray) -> np.ndarray:
        outs = []
        for i in range(x.shape[0]):
            self.net.setInput(np.ascontiguousarray(x[i:i + 1], dtype=np.float32))
            outs.append(np.array(self.net.forward(), copy=True))
        return np.concatenate(outs, axis=0)


class OpenCvUpsample:
    """OpenCV dnn_superres `upsample()` end to end on the BGR uint8 LR image: what a dnn_superres user
    runs (OpenCV's full-range YCrCb, network on Y, bicubic chroma), behind the upscaler interface."""

    color = "rgb"

    def __init__(self, pb_path: str, scale: int = SCALE, name: Optional[str] = None):
        self.sr = dnn_superres(pb_path, scale)
        self.scale = scale
        self.name = name or Path(pb_path).stem

    def __call__(self, x: np.ndarray) -> np.ndarray:
        outs = []
        for i in range(x.shape[0]):
            rgb = np.clip(np.round(x[i].transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)  # exact: LR is uint8
            out = self.sr.upsample(np.ascontiguousarray(rgb[..., ::-1]))[..., ::-1]
            outs.append((out.astype(np.float32) / 255.0).transpose(2, 0, 1))
        return np.stack(outs)


def dnn_superres(pb_path: str, scale: int = SCALE):
    """OpenCV's end-to-end upscaler (BGR uint8 in, BGR uint8 out), what a user of dnn_superres calls."""
    import cv2

    cv2.setNumThreads(THREADS)
    sr = cv2.dnn_superres.DnnSuperResImpl_create()
    sr.readModel(str(pb_path))
    sr.setModel("fsrcnn", scale)
    return sr


def load_torch(row: Row):
    """The SRModel of a torch row (published teacher weights or a kdedge checkpoint)."""
    from kdedge.models.loading import load_model

    if row.arch:
        return load_model(row.arch, weights=row.path, scale=SCALE)
    return load_model(row.path, scale=SCALE)


def build_naive_int8(fp32_path: str, out: Path, scale: int = SCALE, color: str = "y") -> Path:
    """The naive INT8 of kdedge's export: MinMax activation ranges over the shipped calibration images
    (the same 4 in 5 that `kdedge export` calibrates on), every quantizable node in INT8, symmetric:
    kdedge.export's calibrate + quantize steps, i.e. the model behind export's 'int8_naive_minmax' row."""
    from kdedge.export import calibrate as cal
    from kdedge.export import quantize as qz
    from kdedge.export.steps import split_holdout as _split  # export's own calibration/hold-out split, so the ranges match
    from kdedge.export.onnx_export import save_model

    paths = cal.list_images(cal.default_calib_dir())
    images = cal.read_images(paths)
    calib_idx, _ = _split([p.name for p in paths])
    inputs = cal.lr_inputs([images[i] for i in calib_idx], scale, color)
    stats = cal.collect_statistics(fp32_path, inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model(qz.quantize_qdq(fp32_path, cal.ranges(stats, "minmax")), out)
    return out


def ensure_artifact(row: Row) -> None:
    """Make a row's derived file if the suite builds it (idempotent: cached by the source's sha256)."""
    if row.build == "naive-minmax" and row.path and not Path(row.path).is_file():
        build_naive_int8(_bundle_fp32(row), Path(row.path))


def _bundle_fp32(row: Row) -> str:
    from kdedge.runtime.bundle import load_bundle

    return str(load_bundle(row.bundle).model_path("fp32"))


def onnx_path(row: Row) -> Optional[str]:
    """The ONNX file ORT times for this row (exported to the cache for torch rows); None for others."""
    if row.kind == "onnx":
        ensure_artifact(row)
        return row.path
    if row.kind != "torch":
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / ("%s-%s.onnx" % (row.key, sha256_file(row.path)[:12]))
    if not out.is_file():
        import torch

        from kdedge.export.onnx_export import export_onnx

        torch.set_num_threads(THREADS)
        # onnxslim is not part of the benchmark environment; the ORT graph optimiser does its folding
        export_onnx(load_torch(row), out, metadata={"benchmark_row": row.key, "weights": row.path}, slim=False)
        for old in CACHE.glob("%s-*.onnx" % row.key):  # exports of earlier versions of the same checkpoint
            if old != out:
                old.unlink()
    return str(out)


def onnx_color(path: str) -> str:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    return "y" if len(dims) == 4 and dims[1].dim_value == 1 else "rgb"


def upscaler(row: Row):
    """An upscaler for `kdedge.evaluate.evaluate`/`super_resolve`."""
    from kdedge.evaluate import BicubicUpscaler, TorchUpscaler, onnx_upscaler

    if row.kind == "bicubic":
        return BicubicUpscaler(SCALE)
    if row.kind == "opencv":
        return OpenCvUpsample(row.path, name=row.key)
    if row.kind == "onnx":
        ensure_artifact(row)
        backend = "openvino" if row.runtime == "openvino" else "ort-cpu"
        precision = row.precision if backend == "openvino" else None  # bf16: the FP32 file computed in bf16
        return onnx_upscaler(row.path, SCALE, onnx_color(row.path), backend=backend, precision=precision,
                             name=row.key, threads=THREADS)
    if row.kind == "torch":
        import torch

        torch.set_num_threads(THREADS)
        return TorchUpscaler(load_torch(row), name=row.key)
    raise ValueError("unknown row kind %r" % row.kind)
