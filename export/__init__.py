"""kdedge.export: a trained SR model -> a deployable bundle (FP32 / FP16 / INT8 Q/DQ ONNX, manifest).

One module per step, each a plain function tests call directly:
`onnx_export` (torch -> ONNX, parity), `calibrate` (activation ranges: minmax, percentile, entropy,
mse), `quantize` (symmetric INT8 Q/DQ, mixed precision chosen by a sensitivity pass, U8S8 variant),
`fp16`, `report` (the PSNR accuracy table), `frame_graph` (whole-frame graphs), `rewrite`;
`steps` and `int8` are the export's steps built from them (one function per artifact, the gate, the
manifest), `staging` the bundle folder (temporary sibling, atomic rename), `api` the `export_bundle`
pipeline and its options. Heavy imports (torch, onnx, onnxruntime) stay inside the step functions,
so `import kdedge.export` is cheap.
"""
from __future__ import annotations

__all__ = ["export_bundle"]


def export_bundle(*args, **kwargs):
    from kdedge.export.api import export_bundle as _impl

    return _impl(*args, **kwargs)
