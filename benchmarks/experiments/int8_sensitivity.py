"""Where a QAT student's symmetric INT8 drop comes from: each quantized tensor alone, on validation.

    python benchmarks/experiments/int8_sensitivity.py runs/qat/default_lr0.0001_ffc_w0.5_g32/qat.safetensors

The exported Q/DQ graph is simulated exactly (`kdedge.distill.qat.QuantSim`, checked against ONNX Runtime
by tests/test_qat.py) with only some of its quantizers switched on: all of them, the weights only, the
activations only, then each activation and each conv's weights alone. The drop is measured against the
same weights in float, on the validation split `kdedge qat` uses (the last 8 training images, and 8
synthetic text-and-graphics images, seed 999); never on a test set. Writes
experiments/results/int8_sensitivity.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="a `kdedge qat` checkpoint (qat.safetensors)")
    ap.add_argument("--out-name", default="int8_sensitivity")
    args = ap.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from kdedge.checkpoint import read_header
    from kdedge.distill.config import TrainConfig
    from kdedge.distill.data import make_val_pairs, validate_psnr
    from kdedge.distill.inputs import load_images
    from kdedge.distill.qat import FIRST_CONV, QuantSim, fake_quant, fake_quant_weight, graphics_validation, load_student
    from kdedge.models.students import _anchor

    torch.set_num_threads(1)
    qat = read_header(args.checkpoint)["qat"]
    model = load_student(args.checkpoint)
    sim = QuantSim(model.module, qat["activation_amax"], FIRST_CONV in qat["float_nodes"]).eval()
    net = sim.net.eval()
    _, val = load_images(TrainConfig(data=[str(SHARED / "data" / "train" / d) for d in ("T91", "BSD200")], val_holdout=8))
    subsets = {"photos": make_val_pairs(val, model.scale), "graphics": make_val_pairs(graphics_validation(8), model.scale)}

    class Partial(torch.nn.Module):
        """QuantSim's forward with only the quantizers named in `acts` (tensor names) and `weights` (body
        indices, "tail") switched on."""

        def __init__(self, acts, weights):
            super().__init__()
            self.acts, self.weights, self.net = set(acts), set(weights), net

        def forward(self, x):
            q = dict(zip(sim.names, sim.log_amax.exp()))
            h = fake_quant(x, q["lr"]) if "lr" in self.acts else x
            for i, m in enumerate(net.body):
                if isinstance(m, torch.nn.Conv2d):
                    w = fake_quant_weight(m.weight) if i in self.weights else m.weight
                    h = F.conv2d(h, w, m.bias, padding=m.padding)
                    name = "/net/body/body.%d/Relu_output_0" % (i + 1)
                    h = F.relu(fake_quant(h, q[name]) if name in self.acts else h)
            t = net.tail
            w = fake_quant_weight(t.weight) if "tail" in self.weights else t.weight
            y = F.conv2d(h, w, t.bias, padding=t.padding) + _anchor(x, net.scale)
            return F.pixel_shuffle(y, net.scale).clamp(0, 1)

    def score(module):
        return {k: validate_psnr(replace(model, module=module), p) for k, p in subsets.items()}

    convs = [i for i, m in enumerate(net.body) if isinstance(m, torch.nn.Conv2d)]
    weights = [i for i in convs if not (i == 0 and sim.float_first_conv)] + ["tail"]
    acts = list(sim.names)
    rows = {"all": (acts, weights), "weights only": ([], weights), "activations only": (acts, [])}
    rows.update({"activation %s" % a.split("/")[-2]: ([a], []) for a in acts})
    rows.update({"weights %s" % ("body.%d" % w if w != "tail" else "tail"): ([], [w]) for w in weights})
    with torch.no_grad():
        base = score(Partial([], []))
        drops = {}
        for name, (a, w) in rows.items():
            s = score(Partial(a, w))
            drops[name] = {k: round(base[k] - s[k], 4) for k in s}
            print("%-24s photos %.4f  graphics %.4f" % (name, drops[name]["photos"], drops[name]["graphics"]), flush=True)
    result = {"command": "python benchmarks/experiments/int8_sensitivity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "checkpoint": args.checkpoint, "val_images": [i.name for i in val],
              "fp32": {k: round(v, 4) for k, v in base.items()}, "drop_db": drops}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / (args.out_name + ".json")).write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# Where the symmetric INT8 drop comes from", "", "Command: `%s`" % result["command"], "",
             "Drop (dB) of the exact Q/DQ simulation with only the named quantizers on, against the same weights in"
             " float (photos %.4f dB, graphics %.4f dB); validation: %s + 8 synthetic graphics (seed 999)."
             % (base["photos"], base["graphics"], ", ".join(result["val_images"])), "",
             "| quantized | photos | graphics |", "|---|---|---|"]
    lines += ["| %s | %.4f | %.4f |" % (n, d["photos"], d["graphics"]) for n, d in drops.items()]
    (RESULTS / (args.out_name + ".md")).write_text("\n".join(lines) + "\n")
    print("wrote", RESULTS / (args.out_name + ".md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
