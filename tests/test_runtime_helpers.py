"""Tiny bundles for the runtime tests, built with onnx.helper (no torch): conv + DepthToSpace.

The conv copies each input channel to every sub-pixel, so the model is an exact nearest-neighbour
upscaler: tests can predict its output. Imported by the other test_runtime_* files.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def make_onnx(path: Path, channels: int = 1, scale: int = 2, int8: bool = False) -> Path:
    """Write a conv(3x3) + DepthToSpace(scale) model with dynamic H, W; nearest-neighbour by construction."""
    import onnx
    from onnx import TensorProto, helper

    out_c = channels * scale * scale
    w = np.zeros((out_c, channels, 3, 3), np.float32)
    for k in range(out_c):
        w[k, k % channels, 1, 1] = 1.0  # DCR order: output channel k reads input channel k % C
    nodes = [
        helper.make_node("Conv", ["lr", "w"], ["feat"], pads=[1, 1, 1, 1]),
        helper.make_node("DepthToSpace", ["feat"], ["sr"], blocksize=scale, mode="DCR"),
    ]
    graph = helper.make_graph(
        nodes, "tiny_sr",
        [helper.make_tensor_value_info("lr", TensorProto.FLOAT, [1, channels, "h", "w"])],
        [helper.make_tensor_value_info("sr", TensorProto.FLOAT, [1, channels, "H", "W"])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.flatten().tolist())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by onnxruntime 1.19 (Python 3.8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_bundle(folder: Path, color: str = "y", scale: int = 2) -> Path:
    """A complete bundle folder (manifest written through runtime.bundle.write_manifest)."""
    from kdedge.runtime.bundle import write_manifest

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    channels = 1 if color == "y" else 3
    make_onnx(folder / "model.onnx", channels, scale)
    manifest = {
        "format": "kdedge-bundle",
        "format_version": 1,
        "name": "tiny-test-x%d-%s" % (scale, color),
        "scale": scale,
        "color": color,
        "value_range": [0.0, 1.0],
        "layout": "NCHW",
        "input": {"name": "lr", "channels": channels, "dtype": "float32"},
        "output": {"name": "sr", "channels": channels, "dtype": "float32"},
        "size_multiple": 1,
        "shapes": {"min": [1, channels, 8, 8], "opt": [1, channels, 270, 480], "max": [1, channels, 1088, 1920]},
        "precisions": {"fp32": {"file": "model.onnx"}},
        "default_precision": "fp32",
    }
    write_manifest(folder, manifest)
    return folder


@pytest.fixture
def tiny_bundle(tmp_path):
    return make_bundle(tmp_path / "bundle_y")


def test_helper_bundle_is_a_nearest_upscaler(tiny_bundle):
    from kdedge.runtime.backends import open_model
    from kdedge.runtime.bundle import load_bundle

    b = load_bundle(tiny_bundle)
    x = np.random.RandomState(0).rand(1, 1, 5, 7).astype(np.float32)
    with open_model(b.model_path()) as be:
        y = be.infer({"lr": x})["sr"]
    assert y.shape == (1, 1, 10, 14)
    np.testing.assert_allclose(y[0, 0], np.repeat(np.repeat(x[0, 0], 2, 0), 2, 1), atol=1e-6)
    assert json.loads((tiny_bundle / "manifest.json").read_text())["precisions"]["fp32"]["sha256"]
