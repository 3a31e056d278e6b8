"""Step 4 of `kdedge export`: the accuracy gate. PSNR of every precision vs ground truth and vs FP32.

The protocol is `kdedge eval`'s (../shared/data/README.md): HR mod-cropped, LR by MATLAB bicubic,
SR rounded to uint8, PSNR on MATLAB Y with `scale` pixels shaved, grayscale images as Y
("gray-as-y"). `ValSet` precomputes the LR model inputs and the HR Y targets once, so the
sensitivity pass can score dozens of candidate INT8 models quickly; `output_y` turns a model output
into the Y plane exactly as `kdedge.evaluate.super_resolve` does (a test checks the two agree).

Every model runs through the runtime's backends (`onnx_export.open_onnx` and
`kdedge.evaluate.BackendUpscaler`), so the gate measures the code that ships: `accuracy_table` has a
row per precision per CPU backend available at export time (ONNX Runtime always; OpenVINO when it
imports, with a bf16 row where the CPU has it). The gate's verdict is taken on the ONNX Runtime rows
(`export/api.py`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

PSNR_CAP = 100.0  # PSNR of identical outputs is infinite; JSON has no inf, and 100 dB reads as "identical"
GRAY_CONVENTION = "gray-as-y"


@dataclass
class ValImage:
    name: str
    x: np.ndarray  # 1 x C x h x w float32 model input
    hr_y: np.ndarray  # H x W float64 Y in [0, 255] (protocol ground truth)
    gray: bool


def output_y(out: np.ndarray, color: str, gray: bool, rounded: bool = True) -> np.ndarray:
    """Model output (1 x C x H x W, [0, 1]) -> Y plane in [0, 255] after uint8 rounding, as eval does.

    `rounded=False` skips the uint8 rounding (the sensitivity pass compares raw outputs)."""
    from kdedge.data.color import rgb_to_y

    def to255(a):
        a = np.clip(a.astype(np.float64) * 255.0, 0, 255)
        return np.round(a) if rounded else a

    if color == "y":
        return to255(out[0, 0])
    image = to255(out[0].transpose(1, 2, 0))
    y = rgb_to_y(image.astype(np.uint8) if rounded else image / 255.0)
    if gray:
        y = (y - 16.0) * (255.0 / 219.0)  # back to the grey scale the ground truth is on (gray-as-y)
    return y


class ValSet:
    """HR images -> (model input, HR Y) pairs under the protocol, for one scale and colour."""

    def __init__(self, images: Sequence[np.ndarray], names: Sequence[str], scale: int, color: str, label: str = ""):
        from kdedge.data.color import gray_to_y, rgb_to_y
        from kdedge.data.imresize import bicubic_downscale, modcrop
        from kdedge.export.calibrate import model_input

        self.scale, self.color, self.label = scale, color, label
        self.items: List[ValImage] = []
        for name, img in zip(names, images):
            hr = modcrop(img, scale)
            lr = bicubic_downscale(hr, scale)
            gray = hr.ndim == 2
            hr_y = gray_to_y(hr, GRAY_CONVENTION) if gray else rgb_to_y(hr)
            self.items.append(ValImage(name, model_input(lr, color), hr_y, gray))

    @classmethod
    def from_folder(cls, folder, scale: int, color: str, exclude: Sequence[str] = ()) -> "ValSet":
        from kdedge.export.calibrate import list_images, read_images

        paths = [p for p in list_images(folder, "validation") if p.name not in set(exclude)]
        return cls(read_images(paths, "validation"), [p.stem for p in paths], scale, color, str(folder))

    def __len__(self) -> int:
        return len(self.items)

    def outputs_y(self, run: Callable[[np.ndarray], np.ndarray]) -> List[np.ndarray]:
        return [output_y(run(it.x), self.color, it.gray) for it in self.items]

    def drop_estimator(self, reference: Callable[[np.ndarray], np.ndarray]) -> Callable[[Callable], float]:
        """`estimate(run) -> dB`: the PSNR-vs-GT drop that `run`'s deviation from `reference` predicts.

        Per image, drop_i = 10 log10(1 + MSE(run, reference) / MSE(reference, GT)), averaged. Why not
        simply PSNR(reference) - PSNR(run): at the 0.01 dB level that difference is noise (a
        quantization error can land on either side of the ground truth), so rankings flip; the
        deviation is what quantization adds, and weighting it by each image's own error makes clean,
        high-PSNR images (Set5-like) count as much as they hurt.
        """
        from kdedge.metrics import shave_border

        s = self.scale
        raw_ref = [shave_border(output_y(reference(it.x), self.color, it.gray, rounded=False), s) for it in self.items]
        mse_gt = []
        for it in self.items:
            y = shave_border(output_y(reference(it.x), self.color, it.gray), s)
            mse_gt.append(max(float(np.mean((y - shave_border(it.hr_y, s)) ** 2)), 1e-6))

        def estimate(run: Callable[[np.ndarray], np.ndarray]) -> float:
            drops = []
            for it, ref, m in zip(self.items, raw_ref, mse_gt):
                y = shave_border(output_y(run(it.x), self.color, it.gray, rounded=False), s)
                drops.append(10.0 * np.log10(1.0 + float(np.mean((y - ref) ** 2)) / m))
            return float(np.mean(drops))

        return estimate

    def psnr_vs_gt(self, ys: Sequence[np.ndarray]) -> float:
        from kdedge.metrics import psnr

        return float(np.mean([min(PSNR_CAP, psnr(y, it.hr_y, shave=self.scale)) for y, it in zip(ys, self.items)]))

    def psnr_between(self, ys: Sequence[np.ndarray], refs: Sequence[np.ndarray]) -> float:
        from kdedge.metrics import psnr

        return float(np.mean([min(PSNR_CAP, psnr(a, b, shave=self.scale)) for a, b in zip(ys, refs)]))


def table_backends() -> List[str]:
    """The CPU backends the gate measures on: ONNX Runtime always (the gate decides on its rows: it is
    installed wherever export runs, so the verdict does not depend on the machine), then OpenVINO when
    it imports (what `auto` runs on CPUs; its rows are reported, and a too-large drop is logged)."""
    from kdedge.runtime.backends import available_backends

    return ["ort-cpu"] + (["openvino"] if "openvino" in available_backends() else [])


def runtime_precision(name: str) -> str:
    """The runtime precision a table row's model runs at ("int8_naive_minmax" is an INT8 graph)."""
    from kdedge.runtime.backends import PRECISIONS

    if name in PRECISIONS:
        return name
    return "int8" if name.startswith("int8") else "fp32"


def _outputs(model, val: "ValSet", backend: str, precision: str) -> Tuple[List[np.ndarray], str]:
    from kdedge.evaluate import BackendUpscaler
    from kdedge.export.onnx_export import open_onnx

    with open_onnx(model, backend, precision) as be:
        engine = be.label
        ys = val.outputs_y(BackendUpscaler(be, val.scale, val.color, precision))
    return ys, engine


def accuracy_table(models: Dict[str, Any], val: ValSet, reference: str = "fp32",
                   backends: Optional[Sequence[str]] = None, report_only: Sequence[str] = ("int8_naive_minmax", "int8_ptq")
                   ) -> List[Dict[str, Any]]:
    """Rows {backend, precision, engine, psnr_vs_gt, psnr_vs_fp32, drop_db, dataset, images}: each named
    model (an ONNX path or ModelProto) on each backend (default `table_backends()`), run through the
    runtime's backends as the camera runs it. On OpenVINO, where the CPU has bf16, a `bf16` row runs
    the FP32 file in bf16; models in `report_only` (baselines never shipped) run on ONNX Runtime only.
    "vs FP32" and the drop are against the FP32 model on the first backend (ONNX Runtime's f32), so
    every row of every backend is compared with the same reference."""
    backends = list(backends or table_backends())
    runs = []  # (backend, row name, model, runtime precision)
    for backend in backends:
        for name, model in models.items():
            if backend != backends[0] and name in report_only:
                continue
            runs.append((backend, name, model, runtime_precision(name)))
        if backend == "openvino" and reference in models:
            from kdedge.runtime.backends.openvino import cpu_has_bf16

            if cpu_has_bf16():
                runs.append((backend, "bf16", models[reference], "bf16"))
    outs = [_outputs(model, val, backend, prec) for backend, _, model, prec in runs]
    ref_i = next(i for i, r in enumerate(runs) if r[0] == backends[0] and r[1] == reference)
    ref_ys = outs[ref_i][0]
    ref_gt = val.psnr_vs_gt(ref_ys)
    rows = []
    for i, ((backend, name, _, _), (ys, engine)) in enumerate(zip(runs, outs)):
        gt = val.psnr_vs_gt(ys)
        rows.append({
            "backend": backend,
            "precision": name,
            "engine": engine,
            "psnr_vs_gt": round(gt, 4),
            "psnr_vs_fp32": None if i == ref_i else round(val.psnr_between(ys, ref_ys), 4),
            "drop_db": round(ref_gt - gt, 4),
            "dataset": val.label,
            "images": len(val),
        })
    return rows


def format_table(rows: Sequence[Dict[str, Any]], title: Optional[str] = None) -> str:
    """A plain-text table of accuracy rows (printed by the CLI, and easy to paste into an issue)."""
    lines = [title] if title else []
    lines.append("%-9s %-18s %12s %14s %9s  %s" % ("backend", "precision", "PSNR-Y vs GT", "PSNR vs FP32", "drop dB", "dataset"))
    for r in rows:
        vs = "-" if r.get("psnr_vs_fp32") is None else "%.2f" % r["psnr_vs_fp32"]
        # rows of bundles exported before the backend column were all ONNX Runtime's
        lines.append("%-9s %-18s %12.3f %14s %9.3f  %s (%d images)"
                     % (r.get("backend", "ort-cpu"), r["precision"], r["psnr_vs_gt"], vs, r["drop_db"],
                        r.get("dataset", ""), r.get("images", 0)))
    return "\n".join(lines)
