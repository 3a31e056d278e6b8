"""kdedge.runtime: run a kdedge bundle on live video, torch-free (Jetson with TensorRT, or ONNX Runtime).

Layout: `bundle` (the manifest format, one definition shared with export), `backends` (ONNX Runtime
and TensorRT behind one activate/infer/deactivate interface), `uri` / `sources` / `sinks` / `gst`
(jetson-utils style source and sink URIs, GStreamer strings), `colour` (MATLAB YCbCr split/merge), `pipeline` (capture thread, SR, writer thread,
stats). Only numpy, OpenCV, onnxruntime, tensorrt and pycuda may be imported here, and only the first
at module level: Python 3.8 (JetPack 5) must keep working. An import-linter contract in pyproject
forbids torch and the training/export code.
"""
from __future__ import annotations

from kdedge.runtime.bundle import Bundle, load_bundle, write_manifest

__all__ = ["Bundle", "load_bundle", "write_manifest"]
