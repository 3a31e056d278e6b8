"""This CPU's peak multiply-accumulate rate through ONNX Runtime: the ceiling every model is measured against.

A large 3x3 convolution (C -> C channels, 'same' padding, on a 1 x C x S x S input) is the friendliest
workload ORT's kernels get: compute-bound, big channel counts, one op. It is built with onnx.helper
and quantized with ORT's own `quantize_static` (QDQ format, per-channel symmetric INT8 weights) as
S8S8 (symmetric INT8 activations: the TensorRT form kdedge ships) and U8S8 (asymmetric uint8
activations: ORT CPU's fast path). Timed with the same 2 intra-op threads as the speed table; the
peak is the best median rate over a few channel widths. Every model's achieved rate (its MACs per LR
pixel x pixels x FPS) is then reported as a fraction of the peak of its precision.

    python benchmarks/peak.py [--quick]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from common import THREADS, load_avg, machine, results_dir, write_json
from kdedge.runtime.bench import calls_per_block, rate

PRECISIONS = ("fp32", "int8_s8s8", "int8_u8s8")


def conv_model(channels: int, kernel: int = 3, out_channels: Optional[int] = None, seed: int = 0):
    """An ONNX model with one Conv (dynamic H, W), weights drawn like a trained layer's (He init)."""
    from onnx import TensorProto, helper, numpy_helper

    cout = out_channels or channels
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((cout, channels, kernel, kernel)) * np.sqrt(2.0 / (channels * kernel * kernel))).astype(np.float32)
    b = np.zeros(cout, np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[kernel // 2] * 4, kernel_shape=[kernel, kernel])
    graph = helper.make_graph(
        [node], "peak_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, "h", "w"])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def conv_total_macs(channels: int, side: int, kernel: int = 3, out_channels: Optional[int] = None) -> int:
    return side * side * (out_channels or channels) * channels * kernel * kernel


def quantize(fp32_path: Path, out_path: Path, precision: str, channels: int, side: int = 32) -> Path:
    """QDQ INT8 copy of a conv model with ORT's quantize_static (S8S8 symmetric or U8S8)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(1)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": rng.random((1, channels, side, side), dtype=np.float32)} for _ in range(2)])

        def get_next(self):
            return next(self.batches, None)

    s8 = precision == "int8_s8s8"
    quantize_static(str(fp32_path), str(out_path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8 if s8 else QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, extra_options={"ActivationSymmetric": s8, "WeightSymmetric": True})
    return out_path


def _session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def error_vs_fp32(fp32_path: Path, path: Path, channels: int, side: int = 16) -> float:
    """max |quantized - FP32| / max |FP32| on one random input: the INT8 conv timed is the same workload."""
    x = {"x": np.random.default_rng(0).random((1, channels, side, side), dtype=np.float32)}
    ref = _session(fp32_path, 1).run(None, x)[0]
    got = _session(path, 1).run(None, x)[0]
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def measure_rate(path: Path, channels: int, side: int, macs: int, reps: int = 5, min_block_s: float = 0.3,
                 threads: int = THREADS) -> Dict[str, float]:
    """Median GMAC/s of the model at `path` on a 1 x C x side x side input (blocks of runs, after warm-up).

    A raw ONNX Runtime session on purpose, not the runtime's backend: this measures ORT's own kernels
    (the ceiling kdedge's models are compared with), with nothing of kdedge in between."""
    sess = _session(path, threads)
    x = np.random.default_rng(2).random((1, channels, side, side), dtype=np.float32)
    feed = {"x": x}

    def once():
        return sess.run(None, feed)

    once()  # warm-up: ORT picks kernels and allocates on the first run
    n, _ = calls_per_block(once, min_block_s)
    rates = [macs * rate(once, n)() / 1e9 for _ in range(reps)]
    return {"gmac_per_s": float(np.median(rates)), "min": float(np.min(rates)), "max": float(np.max(rates)),
            "runs_per_block": n, "rounds": reps}


def run(quick: bool = False, widths: Sequence[int] = (64, 128), side: int = 192, reps: int = 5,
        out_dir: Optional[Path] = None) -> Dict:
    if quick:
        widths, side, reps = (32,), 64, 2
    rows: List[Dict] = []
    before = load_avg()
    with tempfile.TemporaryDirectory() as tmp:
        for c in widths:
            fp32 = Path(tmp) / ("conv%d.onnx" % c)
            fp32.write_bytes(conv_model(c).SerializeToString())
            macs = conv_total_macs(c, side)
            for prec in PRECISIONS:
                path = fp32 if prec == "fp32" else quantize(fp32, Path(tmp) / ("conv%d.%s.onnx" % (c, prec)), prec, c)
                r = measure_rate(path, c, side, macs, reps=reps)
                r.update({"precision": prec, "channels": c, "side": side, "macs": macs})
                if path != fp32:
                    r["rel_error_vs_fp32"] = error_vs_fp32(fp32, path, c)
                rows.append(r)
                print("peak: %-10s C=%-4d %dx%d  %.1f GMAC/s" % (prec, c, side, side, r["gmac_per_s"]), flush=True)
    peak = {p: max(r["gmac_per_s"] for r in rows if r["precision"] == p) for p in PRECISIONS}
    out = {"quick": quick, "threads": THREADS, "workload": "3x3 conv C->C, same padding, 1 x C x %d x %d" % (side, side),
           "measurements": rows, "peak_gmac_per_s": peak, "loadavg_before": before, "loadavg_after": load_avg(),
           "machine": machine()}
    write_json(Path(out_dir or results_dir(quick)) / "peak.json", out)
    return out


def precision_of(row: Dict) -> str:
    """Which peak a row is measured against: ORT INT8 rows against the best INT8 path, the rest FP32."""
    prec = (row.get("precision") or "")
    if prec.startswith("int8"):
        return "int8"
    return "fp32"


def fraction_of_peak(achieved_gmac: float, peak: Dict[str, float], precision: str) -> float:
    """Achieved rate / peak of that precision ("int8" means the best of S8S8 and U8S8)."""
    ref = max(peak["int8_s8s8"], peak["int8_u8s8"]) if precision == "int8" else peak["fp32"]
    return achieved_gmac / ref


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one small conv, 2 rounds (development)")
    p.add_argument("--out", default=None, metavar="DIR", help="write peak.json here (default: benchmarks/results/, "
                                                               "or results/quick/ with --quick)")
    args = p.parse_args(argv)
    res = run(quick=args.quick, out_dir=args.out)
    print("peak GMAC/s:", {k: round(v, 1) for k, v in res["peak_gmac_per_s"].items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
