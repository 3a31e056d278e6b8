"""Step 1 of `kdedge export`: any SRModel (student or teacher) -> one FP32 ONNX file, checked against torch.

The export uses the TorchScript exporter (`dynamo=False`) at opset 17: TensorRT 8.5 (JetPack 5.1)
parses opset 17, and the dynamo exporter would build opset 18 and down-convert (ENVIRONMENT.md). The
file takes `lr` (N x C x H x W float32 in [0, 1]) and gives `sr` (N x C x sH x sW), with dynamic N, H
and W, weights inside the file, simplified by onnxslim. Students are re-parameterised on a deep copy
first (their training-time branches fused into plain convolutions), and a model that works in
[0, 255] (RLFN) gets its scaling baked into the graph, so every exported file speaks [0, 1].
`check_parity` runs the same inputs through torch and the runtime's ONNX Runtime backend and returns the
max abs difference. `open_onnx` is how every step of export runs an ONNX model: through the runtime's
backends (`kdedge.runtime.backends.open_model`), never a session of its own.
"""
from __future__ import annotations

import contextlib
import copy
import io
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

import numpy as np

from kdedge.errors import KdedgeError

OPSET = 17
# IR 8 is what onnx 1.13 writes for opset 17: the newest IR TensorRT 8.5's parser and onnxruntime 1.19
# (the last for Python 3.8) both read. torch may stamp a newer IR for the same operators.
IR_VERSION = 8
INPUT_NAME = "lr"
OUTPUT_NAME = "sr"


def prepare_module(model) -> Any:
    """A deep copy of `model.module` in eval mode, re-parameterised when the student supports it."""
    import torch

    module = copy.deepcopy(model.module).float().cpu().eval()
    reparam = getattr(module, "reparameterize", None)
    if callable(reparam):
        result = reparam()
        if isinstance(result, torch.nn.Module):  # some students return the fused module, some fuse in place
            module = result.eval()
    for p in module.parameters():
        p.requires_grad_(False)

    class _Export(torch.nn.Module):
        """[0, 1] in and out whatever range the wrapped network works in (SRModel.value_range)."""

        def __init__(self, net, value_range: float):
            super().__init__()
            self.net = net
            self.value_range = float(value_range)

        def forward(self, x):
            if self.value_range != 1.0:
                return self.net(x * self.value_range) / self.value_range
            return self.net(x)

    return _Export(module, model.value_range).eval()


def export_onnx(model, path, metadata: Optional[Dict[str, str]] = None, slim: bool = True) -> Path:
    """Export `model` (an SRModel) to `path`; returns the path. Raises KdedgeError if torch cannot trace it."""
    import onnx
    import torch

    path = Path(path)
    module = prepare_module(model)
    c = model.in_channels
    m = max(1, int(model.size_multiple))
    side = max(16, m * ((16 + m - 1) // m))
    dummy = torch.rand(1, c, side, side + m, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        try:
            out = module(dummy)  # dry forward: a shape bug shows here with a readable torch error
        except Exception as exc:
            raise KdedgeError(
                "model %s fails a forward pass on a 1x%dx%dx%d input: %s" % (model.arch, c, side, side + m, exc),
                fix="check the checkpoint's model_args match its architecture",
            ) from exc
    expected = (1, c, side * model.scale, (side + m) * model.scale)
    if tuple(out.shape) != expected:
        raise KdedgeError(
            "model %s gives shape %s for input %s; expected %s (scale %d, %d channels)"
            % (model.arch, tuple(out.shape), tuple(dummy.shape), expected, model.scale, c),
            fix="the descriptor's scale or color does not match the network",
        )
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            module, (dummy,), buf, dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                          OUTPUT_NAME: {0: "batch", 2: "sr_height", 3: "sr_width"}},
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buf.getvalue())
    if slim:
        import onnxslim

        proto = onnxslim.slim(proto)
    proto.ir_version = min(proto.ir_version, IR_VERSION)
    set_metadata(proto, metadata or {})
    onnx.checker.check_model(proto)
    save_model(proto, path)
    return path


def set_metadata(proto, metadata: Dict[str, str]) -> None:
    """Replace/add ONNX metadata_props (provenance and the options used, as ultralytics stamps them)."""
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in metadata.items():
        if key in existing:
            existing[key].value = str(value)
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = str(key), str(value)


def save_model(proto, path) -> Path:
    """Save an ONNX ModelProto with weights inside the file, atomically (temp file + rename)."""
    from kdedge.common import atomic_write_bytes

    return atomic_write_bytes(Path(path), proto.SerializeToString())


@contextlib.contextmanager
def onnx_file(model) -> Iterator[Path]:
    """An ONNX path as it is, or a ModelProto written to a temporary file for as long as the block runs.

    A file, not bytes, because OpenVINO reads models only from files; every backend then gets the
    same input whether the model was saved yet or not (candidate INT8 graphs never are)."""
    if isinstance(model, (str, Path)):
        yield Path(model)
        return
    with tempfile.TemporaryDirectory(prefix="kdedge-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(model.SerializeToString())
        yield path


@contextlib.contextmanager
def open_onnx(model, backend: str = "ort-cpu", precision: str = "fp32", threads: Optional[int] = None):
    """An active CPU backend of the runtime (`kdedge.runtime.backends.open_model`) for an ONNX path or
    ModelProto: parity, calibration, the sensitivity pass and the accuracy gate all run models through
    it, so what export measures is the code that ships. `precision` only steers OpenVINO's float
    compute: bf16 computes in bf16, every other precision in f32."""
    from kdedge.runtime.backends import open_model

    with onnx_file(model) as path:
        with open_model(path, backend, threads=threads, precision=precision) as be:
            yield be


def check_parity(model, onnx_path, real_inputs: Iterable[np.ndarray] = (), sizes: Sequence = ((1, 17, 23), (2, 40, 32)),
                 seed: int = 0, backend: str = "ort-cpu") -> Dict[str, Any]:
    """Max abs difference torch vs a runtime CPU backend (default ONNX Runtime) on random [0,1] inputs
    of `sizes` (N, H, W) and on `real_inputs`.

    Returns {"random_max_abs", "real_max_abs" (None without real inputs), "max_abs", "inputs": [...]}.
    Sizes are rounded up to the model's size multiple (its padding lives outside the graph).
    """
    import torch

    module = prepare_module(model)
    rng = np.random.default_rng(seed)
    m = max(1, int(model.size_multiple))
    results: List[Dict[str, Any]] = []

    def one(x: np.ndarray, kind: str) -> float:
        with torch.no_grad():
            ref = module(torch.from_numpy(x)).numpy()
        got = be.infer({INPUT_NAME: x})[OUTPUT_NAME]
        if got.shape != ref.shape:
            raise KdedgeError("ONNX output shape %s differs from torch %s for input %s" % (got.shape, ref.shape, x.shape))
        diff = float(np.max(np.abs(got - ref)))
        if not np.isfinite(got).all():
            diff = float("inf")
        results.append({"kind": kind, "shape": list(x.shape), "max_abs": diff})
        return diff

    with open_onnx(Path(onnx_path), backend) as be:
        rand = [one(rng.random((n, model.in_channels, -(-h // m) * m, -(-w // m) * m), dtype=np.float32), "random")
                for n, h, w in sizes]
        real = []
        for x in real_inputs:
            x = np.ascontiguousarray(x, dtype=np.float32)
            if x.ndim == 3:
                x = x[None]
            h, w = x.shape[-2:]
            x = x[..., : h - h % m, : w - w % m]
            real.append(one(x, "real"))
    return {
        "random_max_abs": max(rand) if rand else None,
        "real_max_abs": max(real) if real else None,
        "max_abs": max(rand + real),
        "inputs": results,
    }
