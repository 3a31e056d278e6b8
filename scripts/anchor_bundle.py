"""A bundle with the cost of a real student, for runtime benchmarks before the default bundle exists.

The anchor student of MEASURED.md (conv3x3 1->24, two conv3x3 24->24, conv3x3 24->4, ReLU between,
the input repeated 4x added, DepthToSpace x2: 11,448 MACs per LR pixel, 11.5k parameters), built
with onnx.helper and random weights. Its outputs mean nothing; its speed is the speed of the real
thing, which is what the pipeline-overhead and soak measurements need. Needs `onnx` (dev tools).

    python scripts/anchor_bundle.py OUT_DIR
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def make_anchor_bundle(folder, seed: int = 0, width: int = 24) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from kdedge.runtime.bundle import write_manifest

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    chans = [1, width, width, width, 4]
    inits, nodes, x = [], [], "lr"
    for i in range(4):
        cin, cout = chans[i], chans[i + 1]
        w = (rng.randn(cout, cin, 3, 3) * np.sqrt(2.0 / (9 * cin)) * (0.1 if i == 3 else 1)).astype(np.float32)
        inits += [numpy_helper.from_array(w, "w%d" % i), numpy_helper.from_array(np.zeros(cout, np.float32), "b%d" % i)]
        y = "c%d" % i
        nodes.append(helper.make_node("Conv", [x, "w%d" % i, "b%d" % i], [y], pads=[1, 1, 1, 1]))
        if i < 3:
            nodes.append(helper.make_node("Relu", [y], [y + "r"]))
            y += "r"
        x = y
    nodes.append(helper.make_node("Concat", ["lr", "lr", "lr", "lr"], ["rep"], axis=1))
    nodes.append(helper.make_node("Add", [x, "rep"], ["sum"]))
    nodes.append(helper.make_node("DepthToSpace", ["sum"], ["sr"], blocksize=2, mode="DCR"))
    graph = helper.make_graph(
        nodes, "anchor_x2",
        [helper.make_tensor_value_info("lr", TensorProto.FLOAT, [1, 1, "h", "w"])],
        [helper.make_tensor_value_info("sr", TensorProto.FLOAT, [1, 1, "H", "W"])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))
    write_manifest(folder, {
        "format": "kdedge-bundle", "format_version": 1, "name": "anchor-x2-random-weights", "scale": 2,
        "color": "y", "value_range": [0.0, 1.0], "layout": "NCHW",
        "input": {"name": "lr", "channels": 1, "dtype": "float32"},
        "output": {"name": "sr", "channels": 1, "dtype": "float32"}, "size_multiple": 1,
        "shapes": {"min": [1, 1, 8, 8], "opt": [1, 1, 270, 480], "max": [1, 1, 1088, 1920]},
        "precisions": {"fp32": {"file": "model.onnx"}}, "default_precision": "fp32",
        "source": {"note": "scripts/anchor_bundle.py: random weights, for speed measurements only"},
    })
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", nargs="?", default="/tmp/kdedge-anchor-bundle", help="bundle folder to write")
    print(make_anchor_bundle(ap.parse_args(argv).out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
