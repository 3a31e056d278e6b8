"""How fine must the activation grid be for a 0.02 dB INT8 drop? The QAT student re-scored at other grids.

    python benchmarks/experiments/precision_floor.py runs/student_choice/relu16x5_88k/qat.safetensors

A `kdedge qat` checkpoint is simulated exactly as its Q/DQ file computes (`kdedge.distill.qat.QuantSim`,
its learned ranges), then again with every quantized activation on a grid of N levels per sign over the
same range instead of INT8's 127:

- 127 ("int8 symmetric"): what ships in model.int8.onnx, TensorRT's form; a ReLU output uses 128 of the
  256 codes (its sign bit is wasted);
- 255 ("8 bits unsigned"): a ReLU output spread over all 256 codes: what the centred activations or a
  zero-point-0 UINT8 grid give, the best any 8-bit per-tensor activation can do;
- 511 / 1023 (9 / 10 bits): how the drop falls with each extra bit;
- float activations (weights on their INT8 grid only).

Nothing is trained here and nothing is chosen: the validation split (the QAT run's 8 held-out photos + 8
synthetic graphics) and the test sets (Set5, Set14: standard protocol, reported once) are only measured.
Writes experiments/results/precision_floor.{json,md} (--out-name).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
RESULTS = Path(__file__).resolve().parent / "results"
LEVELS = (127, 255, 511, 1023)


def grid_fake_quant(levels: int):
    """`qat.fake_quant` with `levels` steps per sign over [-amax, amax] (127: exactly INT8's)."""
    import torch

    def fq(x, amax):
        scale = amax / float(levels)
        return torch.clamp(torch.round(x / scale), -levels - 1, levels) * scale

    return fq


def score_sets(spec: str, sets: dict) -> dict:
    """{set: {"fp32", "weights_only", "127", "255", ...}} (dB) for the QAT checkpoint `spec`."""
    from dataclasses import replace

    import torch

    from kdedge.checkpoint import read_header
    from kdedge.distill import qat
    from kdedge.distill.data import validate_psnr
    from kdedge.evaluate import TorchUpscaler, evaluate
    from kdedge.models.loading import load_model

    header = read_header(spec)
    q = header.get("qat") or {}
    if "activation_amax" not in q:
        raise SystemExit("%s is not a `kdedge qat` checkpoint (no qat.activation_amax in its header)" % spec)
    model = load_model(spec)
    sim = qat.QuantSim(model.module, q["activation_amax"], float_first_conv=qat.FIRST_CONV in q["float_nodes"]).eval()

    def score(module, where):
        """Validation pairs, or a test-set folder through kdedge.evaluate (its grayscale convention)."""
        m = replace(model, module=module)
        if isinstance(where, Path):
            return round(evaluate(TorchUpscaler(m), where, progress=False)["psnr_y"], 4)
        return round(validate_psnr(m, where), 4)

    out = {}
    original = qat.fake_quant
    with torch.no_grad():
        for name, pairs in sets.items():
            row = {"fp32": score(qat.float_forward(sim), pairs), "weights_only": score(qat._FloatActivations(sim), pairs)}
            try:
                for levels in LEVELS:
                    qat.fake_quant = grid_fake_quant(levels)  # QuantSim.forward reads the module's function
                    row[str(levels)] = score(sim, pairs)
            finally:
                qat.fake_quant = original
            out[name] = row
            print(name, row, flush=True)
    return out


def evaluation_sets(val_holdout: int = 8) -> dict:
    """The QAT run's validation split (validation pairs) and the two test sets (their folders)."""
    from kdedge.distill.config import TrainConfig
    from kdedge.distill.data import make_val_pairs
    from kdedge.distill.inputs import load_images
    from kdedge.distill.qat import graphics_validation

    _, val = load_images(TrainConfig(data=[str(SHARED / "data" / "train" / d) for d in ("T91", "BSD200")],
                                     val_holdout=val_holdout))
    sets = {"validation photos": make_val_pairs(val, 2), "validation graphics": make_val_pairs(graphics_validation(8), 2)}
    sets.update({name: SHARED / "data" / "test" / name for name in ("Set5", "Set14")})
    return sets


def markdown(spec: str, results: dict, command: str, seconds: float) -> str:
    head = ("| set | FP32 | weights INT8, float activations | " + " | ".join(
        "activations %d levels" % n for n in LEVELS) + " |")
    lines = ["# Precision floor: the INT8 drop of a QAT student at finer activation grids", "",
             "Command: `%s` (%.1f min)." % (command, seconds / 60), "",
             "Student: `%s`, simulated exactly as its Q/DQ file computes (`QuantSim`, its learned ranges); then every "
             "quantized activation on a grid of N levels per sign over the same range (127 = INT8 symmetric, what ships; "
             "255 = all 256 codes on a ReLU's outputs: 8 bits unsigned; 511, 1023 = 9, 10 bits). Each cell: PSNR (dB), "
             "and in brackets the drop from FP32, then (for the activation grids) the part the activations add to the "
             "weights' grid. Nothing is trained or chosen here; Set5 and Set14 are measured once." % spec,
             "", head, "|---" * (3 + len(LEVELS)) + "|"]
    for name, r in results.items():
        cells = ["%.4f (%.4f)" % (r["weights_only"], r["fp32"] - r["weights_only"])] + [
            "%.4f (%.4f; %.4f)" % (r[k], r["fp32"] - r[k], r["weights_only"] - r[k]) for k in map(str, LEVELS)]
        lines.append("| %s | %.4f | %s |" % (name, r["fp32"], " | ".join(cells)))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="a `kdedge qat` checkpoint (qat.safetensors)")
    ap.add_argument("--out-name", default="precision_floor")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.time()
    results = score_sets(args.checkpoint, evaluation_sets())
    command = "python benchmarks/experiments/precision_floor.py " + " ".join(argv if argv is not None else sys.argv[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / (args.out_name + ".json")).write_text(json.dumps(
        {"checkpoint": args.checkpoint, "levels": LEVELS, "results": results, "command": command}, indent=1) + "\n")
    (RESULTS / (args.out_name + ".md")).write_text(markdown(args.checkpoint, results, command, time.time() - t0))
    print("wrote %s.{json,md}" % (RESULTS / args.out_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
