"""kdedge.runtime stays torch-free: importing every runtime module (and the camera launcher) in a
fresh interpreter must not load torch or the training/export code. This complements the
import-linter contract with what actually happens at run time, lazy imports included."""
from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("torch", "torchvision", "spandrel", "safetensors", "kdedge.export", "kdedge.distill",
             "kdedge.models", "kdedge.data")

CODE = """
import json, pkgutil, sys, importlib
import kdedge.runtime, kdedge.camera
for m in pkgutil.walk_packages(kdedge.runtime.__path__, "kdedge.runtime."):
    if m.name != "kdedge.runtime.trt_build":
        importlib.import_module(m.name)
kdedge.camera.build_parser()
print(json.dumps(sorted(sys.modules)))
"""


def test_runtime_imports_no_torch():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out)
    assert "kdedge.runtime.pipeline" in loaded and "kdedge.runtime.backends.trt" in loaded
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == []
