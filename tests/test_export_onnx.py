"""ONNX export: dynamic H/W, names, opset, metadata, parity with torch (<= 1e-4 on [0, 1] inputs)."""
from __future__ import annotations

import numpy as np
import pytest

from test_export_helpers import run_onnx, smooth_images, tiny_anchor

onnx = pytest.importorskip("onnx")
pytest.importorskip("torch")


def test_export_dynamic_shapes_and_parity(tmp_path):
    from kdedge.export.onnx_export import OPSET, check_parity, export_onnx

    model = tiny_anchor()
    path = export_onnx(model, tmp_path / "m.onnx", metadata={"kdedge_arch": "test_anchor"})
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["lr"]
    assert [o.name for o in proto.graph.output] == ["sr"]
    assert {o.domain: o.version for o in proto.opset_import}[""] == OPSET
    assert proto.ir_version <= 8
    assert {p.key: p.value for p in proto.metadata_props}["kdedge_arch"] == "test_anchor"
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[2].dim_param and dims[3].dim_param  # H and W are symbolic
    assert not list(tmp_path.glob("*.data"))  # weights inside the file
    out = run_onnx(path, {"lr": np.zeros((1, 1, 11, 7), np.float32)})
    assert out.shape == (1, 1, 22, 14)
    parity = check_parity(model, path, real_inputs=[im[None] for im in smooth_images(2)])
    assert parity["random_max_abs"] <= 1e-4 and parity["real_max_abs"] <= 1e-4
    assert len(parity["inputs"]) == 4


def test_export_value_range_is_baked_in(tmp_path):
    """A model working in [0, 255] (like RLFN) still exports as [0, 1] in, [0, 1] out."""
    import torch

    from kdedge.export.onnx_export import check_parity, export_onnx

    model = tiny_anchor()
    base = model.module

    class In255(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.base = base

        def forward(self, x):
            return self.base(x / 255.0) * 255.0

    model.module = In255()
    model.value_range = 255.0
    path = export_onnx(model, tmp_path / "m.onnx")
    x = smooth_images(1)[0][None, None]
    got = run_onnx(path, {"lr": x})
    with torch.no_grad():
        ref = base(torch.from_numpy(x)).numpy()
    assert np.abs(got - ref).max() <= 1e-4
    assert check_parity(model, path)["max_abs"] <= 1e-4


def test_reparameterize_is_called_on_a_copy(tmp_path):
    import torch

    from kdedge.export.onnx_export import export_onnx

    model = tiny_anchor()
    net = model.module

    class Reparam(type(net)):
        def reparameterize(self):
            with torch.no_grad():
                self.tail.bias.fill_(0.25)  # visible in the exported output, must not touch the original

    net.__class__ = Reparam
    path = export_onnx(model, tmp_path / "m.onnx")
    assert float(net.tail.bias.detach().abs().max()) == 0.0
    x = np.full((1, 1, 8, 8), 0.5, np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
        net.reparameterize()
        fused = net(torch.from_numpy(x)).numpy()
    got = run_onnx(path, {"lr": x})
    assert np.abs(got - fused).max() <= 1e-5 and np.abs(got - ref).max() > 0.1


def test_wrong_scale_is_a_clear_error(tmp_path):
    from kdedge.errors import KdedgeError
    from kdedge.export.onnx_export import export_onnx

    model = tiny_anchor()
    model.scale = 3
    with pytest.raises(KdedgeError, match="expected"):
        export_onnx(model, tmp_path / "m.onnx")
