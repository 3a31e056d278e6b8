"""Step 3 of `kdedge export`: FP32 ONNX + activation ranges -> explicit Q/DQ INT8 ONNX (TensorRT's form).

`quantize_qdq` inserts QuantizeLinear/DequantizeLinear with ONNX Runtime's QDQ quantizer, fed with
the ranges `kdedge.export.calibrate` computed (not ORT's own calibrators, see there):
- symmetric INT8 activations (zero point 0) and per-channel symmetric INT8 weights: what TensorRT's
  explicit quantization builds from;
- float weights followed by a Q/DQ pair (`AddQDQPairToWeight`), the form NVIDIA's
  pytorch-quantization exports and every TensorRT version since 8.0 folds; biases stay float (TensorRT
  fuses them itself);
- `excluded` nodes stay in float: mixed precision, chosen by `sensitivity`.
`u8s8=True` gives the asymmetric (UINT8 activations, INT8 weights) variant that ORT CPU runs fastest.

`sensitivity` is the measurement behind the exclusions: quantize everything, measure the PSNR drop
on calibration images, then re-measure with each candidate node left in float, and select nodes
forward (re-measuring each step) until the drop is under the target. An excluded node really runs in
float: its inputs are re-pointed past ORT's Q/DQ (see `_float_inputs_for_excluded`). The candidates are the nodes
where SR nets are known to be fragile: the first and last convolutions, the image-space residual add,
the pixel-shuffle tail and the output clip (and, for a small graph, every node).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from kdedge.errors import KdedgeError

_TAIL_OPS = ("DepthToSpace", "Clip", "Add", "Sum", "Tile", "Concat")
_ALL_NODES_LIMIT = 24  # graphs this small get every quantizable node as a candidate


def _tensors_data(ranges: Dict[str, Tuple[float, float]]):
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

    data = {name: TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))
            for name, (lo, hi) in ranges.items()}
    # The label is informational only: the ranges are ours (see calibrate.py).
    return TensorsData(CalibrationMethod.MinMax, data)


def quantize_qdq(fp32_path, ranges: Dict[str, Tuple[float, float]], excluded: Sequence[str] = (),
                 u8s8: bool = False):
    """Return the Q/DQ ModelProto of `fp32_path` (not saved). `excluded`: node names kept in float."""
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    model = load_model_with_shape_infer(Path(fp32_path))
    # What each node read and who produced it, before the quantizer edits the graph in place.
    original = ({n.name: list(n.input) for n in model.graph.node},
                {o: n.name for n in model.graph.node for o in n.output})
    extra = {
        "ActivationSymmetric": not u8s8,
        "WeightSymmetric": True,
        "QuantizeBias": False,  # TensorRT wants float bias; ORT CPU fuses either way
        "AddQDQPairToWeight": not u8s8,  # float weights + Q/DQ: the TensorRT form; ORT CPU prefers int8 initializers
    }
    # Keywords, not positions: QDQQuantizer is ORT's internal class (quantize_static builds it the
    # same way) and its positional order changed across releases; written against onnxruntime 1.31.
    quantizer = QDQQuantizer(
        model=model,
        per_channel=True,
        reduce_range=False,  # VNNI and TensorRT accumulate without 7-bit tricks
        weight_qType=QuantType.QInt8,
        activation_qType=QuantType.QUInt8 if u8s8 else QuantType.QInt8,
        tensors_range=_tensors_data(ranges),
        nodes_to_quantize=[],
        nodes_to_exclude=list(excluded),
        op_types_to_quantize=sorted(set(QLinearOpsRegistry) | set(QDQRegistry)),  # quantize_static's default
        extra_options=extra,
    )
    quantizer.quantize_model()
    proto = quantizer.model.model
    if excluded:
        _float_inputs_for_excluded(proto, set(excluded), *original)
    src = onnx.load(str(fp32_path), load_external_data=False)
    proto.ir_version = src.ir_version
    del proto.metadata_props[:]
    proto.metadata_props.extend(src.metadata_props)
    return proto


def _float_inputs_for_excluded(proto, excluded: set, original_inputs: Dict[str, List[str]],
                               original_producers: Dict[str, str]) -> None:
    """Make excluded nodes read float tensors, not the dequantized copies ORT hands them.

    ORT quantizes a tensor when its producer or any consumer is quantized, and then feeds every
    consumer the DequantizeLinear output, so an "excluded" Add on the image-space residual still adds
    values rounded to 1/127 steps: the error the exclusion was meant to avoid (measured: it recovers
    only half the drop). Here each excluded node's input goes back to the tensor it read in the FP32
    graph, when the same node as in the FP32 graph (or the graph input) still produces it; Q/DQ
    pairs left without consumers are removed. The check matters: with asymmetric activations ORT
    deletes a ReLU after a conv (the uint8 clamp at the zero point does its work) and hands its
    output name to the conv, so that tensor is then pre-ReLU (re-pointing to it cost 10 dB; measured).
    """
    producer = {o: n for n in proto.graph.node for o in n.output}
    graph_inputs = {i.name for i in proto.graph.input}
    for node in proto.graph.node:
        if node.name not in excluded or node.name not in original_inputs:
            continue
        before = original_inputs[node.name]
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear" or i >= len(before):
                continue
            orig = before[i]
            made_by = producer.get(orig)
            float_source = orig in graph_inputs or (made_by is not None and made_by.name == original_producers.get(orig))
            if float_source and orig != name:
                node.input[i] = orig
    outputs = {o.name for o in proto.graph.output}
    changed = True
    while changed:  # drop Q/DQ nodes nobody reads any more (a DQ first, then its Q)
        changed = False
        used = {i for n in proto.graph.node for i in n.input} | outputs
        for n in list(proto.graph.node):
            if n.op_type in ("QuantizeLinear", "DequantizeLinear") and not any(o in used for o in n.output):
                proto.graph.node.remove(n)
                changed = True
    used = {i for n in proto.graph.node for i in n.input}
    for init in list(proto.graph.initializer):
        if init.name not in used and (init.name.endswith("_scale") or init.name.endswith("_zero_point")):
            proto.graph.initializer.remove(init)


def check_qdq_form(proto) -> Dict[str, int]:
    """Assert the TensorRT form: every Q/DQ INT8 with zero point 0; weights per-channel. Returns counts."""
    from onnx import numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    consts = {}
    for n in proto.graph.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    counts = {"QuantizeLinear": 0, "DequantizeLinear": 0, "per_channel": 0}
    for n in proto.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        counts[n.op_type] += 1
        if len(n.input) < 3 or not n.input[2]:
            raise KdedgeError("Q/DQ node %s has no zero point (TensorRT needs an explicit INT8 zero point)" % n.name)
        zp_name = n.input[2]
        zp = numpy_helper.to_array(inits[zp_name]) if zp_name in inits else consts.get(zp_name)
        if zp is None:
            raise KdedgeError("Q/DQ node %s: zero point %s is not a constant" % (n.name, zp_name))
        if zp.dtype != np.int8 or np.any(zp != 0):
            raise KdedgeError("Q/DQ node %s is not symmetric INT8 (zero point %s, %s)" % (n.name, zp.ravel()[:4], zp.dtype))
        scale_name = n.input[1]
        scale = numpy_helper.to_array(inits[scale_name]) if scale_name in inits else consts.get(scale_name)
        if scale is not None and scale.size > 1:
            counts["per_channel"] += 1
    if counts["QuantizeLinear"] == 0:
        raise KdedgeError("the INT8 model has no QuantizeLinear node: nothing was quantized")
    return counts


def quantizable_nodes(proto) -> List[str]:
    """Names of nodes ORT's QDQ quantizer puts in INT8 (the op types `quantize_qdq` asks it to quantize)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    ops = set(QDQRegistry) | set(QLinearOpsRegistry)
    return [n.name for n in proto.graph.node if n.op_type in ops and n.name]


def candidate_nodes(proto) -> List[str]:
    """Sensitivity candidates: first and last conv, and the image-space tail (add, shuffle, clip).

    A small graph (the students) gets every quantizable node: measuring is cheaper than guessing.
    """
    names = quantizable_nodes(proto)
    if len(names) <= _ALL_NODES_LIMIT:
        return names
    by_name = {n.name: n for n in proto.graph.node}
    convs = [n for n in names if by_name[n].op_type in ("Conv", "ConvTranspose")]
    picked = convs[:1] + convs[-1:]
    last_conv_index = max(i for i, n in enumerate(proto.graph.node) if n.name == convs[-1]) if convs else 0
    picked += [n.name for n in proto.graph.node[last_conv_index:] if n.name in names and n.op_type in _TAIL_OPS]
    return list(dict.fromkeys(picked))


@dataclass
class Sensitivity:
    """What the sensitivity pass measured (all PSNR in dB vs the FP32 model, on validation inputs)."""

    all_quantized_drop: float
    per_node_gain: Dict[str, float]  # drop(all) - drop(all but this node in float)
    excluded: List[str]
    final_drop: float
    steps: List[Dict[str, object]] = field(default_factory=list)
    float_fraction: float = 0.0  # share of the network's conv weights (MACs) left in float

    def to_dict(self) -> Dict[str, object]:
        return {
            "all_quantized_drop_db": round(self.all_quantized_drop, 4),
            "per_node_gain_db": {k: round(v, 4) for k, v in sorted(self.per_node_gain.items(), key=lambda kv: -kv[1])},
            "excluded_nodes": list(self.excluded),
            "final_drop_db": round(self.final_drop, 4),
            "float_compute_fraction": round(self.float_fraction, 4),
            "objective": "estimated PSNR-Y drop on calibration images: mean of 10 log10(1 + MSE(int8, fp32) / MSE(fp32, GT))",
            "steps": self.steps,
        }


def node_costs(proto) -> Dict[str, float]:
    """Relative compute of each node: a conv's weight count (MACs per pixel of its input grid);
    element-wise and data-movement nodes count 0. Students run every conv at LR resolution, so
    this proxy is their MAC share; for other nets it is an approximation, recorded as such."""
    from onnx import numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    costs = {}
    for n in proto.graph.node:
        cost = 0.0
        if n.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and len(n.input) > 1 and n.input[1] in inits:
            cost = float(numpy_helper.to_array(inits[n.input[1]]).size)
        costs[n.name] = cost
    return costs


def sensitivity(fp32_path, ranges: Dict[str, Tuple[float, float]], drop_of: Callable[[object], float],
                target_drop: float = 0.05, max_excluded: int = 6, min_gain: float = 0.005,
                candidates: Optional[Sequence[str]] = None, max_float_fraction: float = 0.1) -> Sensitivity:
    """Choose float nodes by measurement. `drop_of(qdq_proto) -> dB` measures PSNR(FP32) - PSNR(INT8).

    First each candidate is left in float alone (its "gain" is reported: the layers that hurt most).
    Then forward selection: at each step every remaining candidate is tried on top of the nodes kept
    so far and the best is kept if it recovers at least `min_gain` dB; this stops when the drop is at
    most `target_drop` or `max_excluded` nodes are in float. Re-measuring at each step matters:
    the residual path only becomes float when the Add *and* the Concat feeding it are excluded, and
    neither alone shows much. Float nodes cost speed: the excluded set may hold at most
    `max_float_fraction` of the network's compute (`node_costs`), so a wide body conv is never kept
    in float to buy a few hundredths of a dB.
    """
    import onnx

    proto = onnx.load(str(fp32_path))
    cands = list(candidates) if candidates is not None else candidate_nodes(proto)
    base = drop_of(quantize_qdq(fp32_path, ranges))
    gains = {name: base - drop_of(quantize_qdq(fp32_path, ranges, excluded=[name])) for name in cands}
    costs = node_costs(proto)
    total = sum(costs.values()) or 1.0
    excluded: List[str] = []
    current = base
    steps: List[Dict[str, object]] = [{"excluded": [], "drop_db": round(base, 4)}]
    while current > target_drop and len(excluded) < max_excluded:
        spent = sum(costs.get(n, 0.0) for n in excluded)
        trials = {name: drop_of(quantize_qdq(fp32_path, ranges, excluded=excluded + [name]))
                  for name in cands if name not in excluded
                  and (spent + costs.get(name, 0.0)) / total <= max_float_fraction}
        if not trials:
            break
        best = min(trials, key=lambda n: trials[n])
        steps.append({"excluded": excluded + [best], "drop_db": round(trials[best], 4)})
        if current - trials[best] < min_gain:
            break
        excluded.append(best)
        current = trials[best]
    fraction = sum(costs.get(n, 0.0) for n in excluded) / total
    return Sensitivity(base, gains, excluded, current, steps, float_fraction=fraction)
