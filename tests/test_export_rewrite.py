"""The identity split is exact, applies only where a fused identity sits, and feeds quantization."""
from __future__ import annotations

import numpy as np
import pytest

from test_export_helpers import run_onnx

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _conv_model(w: np.ndarray):
    from onnx import TensorProto, helper, numpy_helper

    c = w.shape[0]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["y"], ["out"], name="relu")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, "h", "w"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, c, "h", "w"])],
        initializer=[numpy_helper.from_array(w.astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_split_identity_is_exact_and_selective():
    from kdedge.export.rewrite import split_identity

    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.05, (4, 4, 3, 3))
    fused = w.copy()
    fused[np.arange(4), np.arange(4), 1, 1] += 1.0  # a RepVGG identity branch folded in
    model, names = split_identity(_conv_model(fused))
    assert names == ["conv"] and [n.op_type for n in model.graph.node] == ["Conv", "Add", "Relu"]
    new_w = onnx.numpy_helper.to_array(model.graph.initializer[0])
    np.testing.assert_allclose(new_w, w, atol=1e-6)  # the outlier tap is gone
    x = rng.random((1, 4, 9, 7), dtype=np.float32)
    a = run_onnx(_conv_model(fused), {"x": x})
    b = run_onnx(model, {"x": x})
    np.testing.assert_allclose(a, b, atol=1e-6)
    # no identity in there: nothing to split (subtracting one would create an outlier)
    assert split_identity(_conv_model(w))[1] == []
