"""Images, the MATLAB-compatible resize and colour conversions, datasets and degradations.

Everything here is numpy (plus OpenCV for file I/O): the evaluation protocol must not depend on
torch, so that ONNX models and bundles are measured by exactly the same code as torch models.
"""
