"""kdedge: distil super-resolution models into INT8-friendly students, export them, run them on a Jetson.

Importing this package is cheap on purpose (no torch, no onnx, no OpenCV): the Jetson runtime and
`kdedge --help` must work where only numpy is installed. Heavy modules are imported by the
subpackages that need them.
"""
from __future__ import annotations

__version__ = "0.1.0"

from kdedge.errors import KdedgeError  # noqa: E402  (lightweight, stdlib only)

__all__ = ["KdedgeError", "__version__"]
