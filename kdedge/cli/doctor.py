"""Check this machine: JetPack/L4T, CUDA, TensorRT, pycuda, ONNX Runtime, OpenCV GStreamer, cameras.

Prints one line per check and, for each problem, the fix. Exit status 1 when something the runtime
needs is broken (no usable backend; on a Jetson, TensorRT, pycuda or GStreamer missing), else 0.
Works without torch, TensorRT or a GPU.

examples:
  kdedge doctor
  kdedge doctor --json
"""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")


def run(args: argparse.Namespace) -> int:
    from kdedge.camera import DEFAULT_BUNDLE
    from kdedge.runtime.doctor import FAIL, format_checks, run_checks

    checks = run_checks(default_bundle=DEFAULT_BUNDLE)
    print(json.dumps(checks, indent=2) if args.json else format_checks(checks))
    return 1 if any(c["status"] == FAIL for c in checks) else 0
