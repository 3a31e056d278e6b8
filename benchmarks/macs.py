"""Parameters and MACs per LR pixel of every row of the suite, counted from what actually runs.

Method (stated in RESULTS.md):
- ONNX models (teachers' exports, kdedge students in every precision): `kdedge.export.macs`
  (every Conv / Gemm / MatMul node, output shapes observed by ONNX Runtime on a 1 x C x 128 x 128
  input, parameters traced through DequantizeLinear; its docstring has the details).
- OpenCV FSRCNN .pb files: the conv weight blobs OpenCV's TensorFlow importer loads; every conv runs
  at LR resolution (the depth-to-space is the last layer), so MACs per LR pixel = sum of k_h k_w C_in
  C_out. `fsrcnn_formula` gives the same from the known architecture (d, s, m) as a cross-check.
- bicubic: a separable 4-tap filter on RGB.
Only the OpenCV part lives here: it needs the benchmark environment's opencv-contrib (dnn_superres).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np

from kdedge.export.macs import fsrcnn_formula, onnx_complexity


def opencv_pb_complexity(pb_path, scale: int = 2) -> Dict[str, float]:
    """Params and MACs per LR pixel of a dnn_superres FSRCNN .pb, from the weights OpenCV loads."""
    import cv2

    net = _read_pb(pb_path)
    macs = params = 0
    convs = []
    for name in net.getLayerNames():
        try:
            layer = net.getLayer(net.getLayerId(name))
        except cv2.error:  # the old engine cannot describe its DepthToSpace layer; it has no weights
            continue
        blobs = list(layer.blobs)
        if layer.type == "Convolution" and blobs:
            w = blobs[0].shape
            convs.append(tuple(w))
            macs += int(np.prod(w))
            params += int(np.prod(w))
        params += sum(int(np.prod(b.shape)) for b in blobs[1:] if layer.type == "Convolution")
        if layer.type == "Scale" and blobs:  # bias adds and PReLU slopes of the TF graph
            params += int(np.prod(blobs[0].shape))
    d = convs[0][0]
    s = convs[1][0]
    m = sum(1 for c in convs if c[2:] == (3, 3))
    io = sum(c[0] + c[1] for c in convs)  # every conv at LR resolution: C_in read + C_out written per pixel
    return {"params": params, "macs_per_lr_pixel": float(macs), "in_channels": 1, "method": "opencv-pb-weights",
            "conv_io_elements_per_lr_pixel": float(io),
            "architecture": {"d": d, "s": s, "m": m}, "formula_macs": fsrcnn_formula(d, s, m, scale)}


def _read_pb(pb_path):
    """cv2.dnn net of a dnn_superres TF .pb, on the engine dnn_superres itself uses.

    The graph ends in a TF DepthToSpace node that OpenCV's dnn importers only understand once
    dnn_superres has registered its own DepthToSpace layer, which `DnnSuperResImpl.readModel` does
    (OpenCV 5.0 measured: without it the forward fails with "DepthSpaceLayer: blocksize is required").
    So read the model once through dnn_superres, then read it as a plain net on the classic engine."""
    import cv2

    sr = cv2.dnn_superres.DnnSuperResImpl_create()
    sr.readModel(str(pb_path))
    engine = getattr(cv2.dnn, "ENGINE_CLASSIC", None)
    if engine is None:
        return cv2.dnn.readNetFromTensorflow(str(pb_path))
    return cv2.dnn.readNetFromTensorflow(str(pb_path), "", engine)


def complexity_of(row, onnx_path: Optional[str] = None) -> Dict[str, float]:
    """Complexity of a benchmark row (see common.Row); bicubic is a fixed filter with no parameters."""
    if row.kind == "bicubic":
        # separable 4-tap filter per output pixel and channel: 8 MACs x scale^2 outputs x 3 channels
        return {"params": 0, "macs_per_lr_pixel": 8.0 * 4 * 3, "method": "separable 4-tap bicubic, RGB"}
    if row.kind == "opencv":
        return opencv_pb_complexity(row.path)
    if onnx_path is None:
        raise ValueError("row %s needs an ONNX file to count" % row.key)
    return onnx_complexity(Path(onnx_path))
