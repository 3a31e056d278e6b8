"""Quantization-aware fine-tuning of a shipped student: recipes compared on validation, the winner tested once.

    python benchmarks/experiments/qat_recipe.py --source kdedge/assets/student_x2.safetensors --name default \
        --lrs 1e-4 3e-4 --float-first-conv both --steps 5000 --parallel
    python benchmarks/experiments/qat_recipe.py --source kdedge/assets/fast_x2 --name fast --lrs 3e-4 1e-3
    python benchmarks/experiments/qat_recipe.py --source kdedge/assets/student_x2.safetensors --name default \
        --lrs 1e-4 --float-first-conv on --graphics 0 32 96 --parallel --out-name qat_graphics
    python benchmarks/experiments/qat_recipe.py --source kdedge/assets/student_x2.safetensors --name default \
        --lrs 1e-4 --float-first-conv on --graphics 32 --centre 0 6000 12000 --steps 3000 --parallel --out-name qat_centred

1. `kdedge qat SOURCE --lr LR [--float-first-conv]` per recipe (T91 + BSD200, the last 8 images held out for
   validation; skipped when the run folder already has qat.json);
2. the recipe is chosen on validation (never a test set): two subsets, the held-out photos and 8 synthetic
   text-and-graphics images (`kdedge qat` validates on both; for runs written before it did, the subsets
   are scored here from qat.safetensors), and the recipe kept is the one whose INT8 drop against the FP32
   it started from is smallest on its worse subset;
3. only that one is exported (`kdedge export --int8 --u8s8 --fp16 --report Set5 --report Set14`), and
   its Set5 / Set14 rows are written next to those of the bundle shipped when it runs (kdedge/assets/<name>_x2),
   into experiments/results/qat_<name>.{json,md} (or --out-name).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
RESULTS = Path(__file__).resolve().parent / "results"


def _qat(source: str, run: Path, recipe, args) -> subprocess.Popen:
    lr, ffc, w, g, refit = recipe
    cmd = [sys.executable, "-m", "kdedge", "qat", source, "--out", str(run), "--lr", "%g" % lr, "--fp32-weight", "%g" % w,
           "--steps", str(args.steps), "--eval-interval", str(args.eval_interval), "--threads", "1", "--graphics", str(g)]
    if ffc:
        cmd.append("--float-first-conv")
    if refit:
        cmd += ["--centre", "--refit-steps", str(refit)]
    for d in args.data:
        cmd += ["--data", d]
    print("$", " ".join(cmd), flush=True)
    log = open(str(run) + ".log", "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO))


def _by_subset(run: Path, source: str) -> dict:
    """FP32 (the source) and INT8 (the kept step) validation PSNR on the photos and on the synthetic graphics,
    for a qat.json written before `kdedge qat` reported them (the same split and images it uses)."""
    from kdedge.checkpoint import read_header
    from kdedge.distill.config import TrainConfig
    from kdedge.distill.data import make_val_pairs
    from kdedge.distill.inputs import load_images
    from kdedge.distill.qat import FIRST_CONV, QuantSim, graphics_validation, load_student, score_by_subset

    qat = read_header(run / "qat.safetensors")["qat"]
    model = load_student(source)
    sim = QuantSim(load_student(str(run / "qat.safetensors")).module, qat["activation_amax"], FIRST_CONV in qat["float_nodes"])
    n = len(json.loads((run / "qat.json").read_text())["val_images"])
    _, val = load_images(TrainConfig(data=[str(SHARED / "data" / "train" / d) for d in ("T91", "BSD200")], val_holdout=n))
    subsets = {"photos": make_val_pairs(val, model.scale), "graphics": make_val_pairs(graphics_validation(8), model.scale)}
    return score_by_subset(model, sim.eval(), subsets)


def set_rows(manifest: dict) -> dict:
    """{(set, backend, precision): (psnr_vs_gt, drop_db)} of a manifest's Set5 / Set14 rows."""
    out = {}
    for r in manifest["accuracy"]["rows"]:
        name = Path(str(r.get("dataset", ""))).name
        if name in ("Set5", "Set14"):
            out[(name, r.get("backend", "ort-cpu"), r["precision"])] = (r["psnr_vs_gt"], r["drop_db"])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True, help="checkpoint or bundle folder of the student to fine-tune")
    ap.add_argument("--name", required=True, choices=("default", "fast"), help="which shipped bundle it replaces")
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4], help="weight learning rates to compare")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--eval-interval", type=int, default=500)
    ap.add_argument("--data", nargs="+", default=[str(SHARED / "data" / "train" / "T91"), str(SHARED / "data" / "train" / "BSD200")])
    ap.add_argument("--float-first-conv", choices=("off", "on", "both"), default="off",
                    help="recipes with the first conv in float (kdedge qat --float-first-conv), without, or both")
    ap.add_argument("--fp32-weights", type=float, nargs="+", default=[0.5],
                    help="kdedge qat --fp32-weight values to compare (0: the quantized graph's loss only)")
    ap.add_argument("--graphics", type=int, nargs="+", default=[0],
                    help="kdedge qat --graphics values to compare (synthetic text/graphics images in the training patches)")
    ap.add_argument("--centre", type=int, nargs="+", default=[0], metavar="REFIT_STEPS",
                    help="kdedge qat --centre with these --refit-steps (0: ReLU activations as trained, no centring)")
    ap.add_argument("--out-name", default="", help="results file stem (default qat_<name>)")
    ap.add_argument("--runs", default="runs/qat", help="parent of the run folders")
    ap.add_argument("--parallel", action="store_true", help="run the recipes at once (one thread each)")
    args = ap.parse_args(argv)

    ffcs = {"off": [False], "on": [True], "both": [False, True]}[args.float_first_conv]
    recipes = [(lr, ffc, w, g, c) for c in args.centre for g in args.graphics for w in args.fp32_weights for ffc in ffcs
               for lr in args.lrs]
    runs = {r: REPO / args.runs / ("%s_lr%g%s_w%g%s%s" % (args.name, r[0], "_ffc" if r[1] else "", r[2], "_g%d" % r[3] if r[3] else "",
                                                         "_centred%d" % r[4] if r[4] else ""))
            for r in recipes}
    t0 = time.time()
    procs = []
    for r in [r for r in recipes if not (runs[r] / "qat.json").is_file()]:
        runs[r].parent.mkdir(parents=True, exist_ok=True)
        procs.append(_qat(args.source, runs[r], r, args))
        if not args.parallel and procs[-1].wait() != 0:
            raise SystemExit("kdedge qat failed: see %s.log" % runs[r])
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("a kdedge qat run failed: see the .log files under %s" % (REPO / args.runs))
    summaries = {r: json.loads((runs[r] / "qat.json").read_text()) for r in recipes}
    for r, s in summaries.items():
        if "val_by_subset" not in s:
            s["val_by_subset"] = _by_subset(runs[r], args.source)
    # the recipe whose INT8 stays closest to the FP32 it started from on its worse subset: the issue asks for
    # INT8 within a fixed drop of FP32 on any content, and a mean PSNR would reward the weights learning the
    # synthetic graphics better in float (96 graphics images: +0.10 dB on them) over a smaller drop on photos
    best = min(recipes, key=lambda r: max(v["fp32"] - v["int8"] for v in summaries[r]["val_by_subset"].values()))
    new, old = export_and_test(runs[best] / "qat.safetensors", runs[best] / "bundle", args.name)
    result = {"command": "python benchmarks/experiments/qat_recipe.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "source": args.source, "chosen": {"lr": best[0], "float_first_conv": best[1], "fp32_weight": best[2], "graphics": best[3],
                                                   "centre_refit_steps": best[4]},
              "minutes": round((time.time() - t0) / 60, 1),
              "validation": {runs[r].name: {k: s[k] for k in ("val_images", "val_psnr_fp32", "val_psnr_int8_start",
                                                              "val_psnr_int8_best", "val_by_subset", "history")}
                             for r, s in summaries.items()},
              "test_rows_qat": {"|".join(k): v for k, v in new.items()}, "test_rows_shipped_before": {"|".join(k): v for k, v in old.items()}}
    RESULTS.mkdir(exist_ok=True)
    stem = args.out_name or "qat_%s" % args.name
    (RESULTS / (stem + ".json")).write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / (stem + ".md")).write_text(_markdown(result, args, new, old, summaries, best))
    print("wrote", RESULTS / (stem + ".md"))
    return 0


def export_and_test(checkpoint: Path, bundle: Path, name: str):
    """Export `checkpoint` once into `bundle` (`kdedge export --int8 --u8s8 --fp16` with Set5 / Set14 rows; kept
    when it exists) and return (its test rows, those of the bundle shipped now as kdedge/assets/<name>_x2)."""
    if not (bundle / "manifest.json").is_file():
        cmd = [sys.executable, "-m", "kdedge", "export", str(checkpoint), "--int8", "--u8s8", "--fp16",
               "--name", "kdedge-%s-x2" % name, "--out", str(bundle), "--overwrite",
               "--report", str(SHARED / "data" / "test" / "Set5"), "--report", str(SHARED / "data" / "test" / "Set14")]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=str(REPO))
    new = set_rows(json.loads((bundle / "manifest.json").read_text()))
    old = set_rows(json.loads((REPO / "kdedge" / "assets" / ("%s_x2" % name) / "manifest.json").read_text()))
    return new, old


def set_rows_markdown(new: dict, old: dict, label: str) -> list:
    """Markdown table lines: each test row of the new bundle (`label` names its PSNR column) beside the shipped one's."""
    lines = ["| set | backend | precision | %s | drop | before: PSNR | drop |" % label, "|---|---|---|---|---|---|---|"]
    for key in sorted(new, key=lambda k: (k[0] != "Set5", k[1], k[2])):
        o = old.get(key)
        lines.append("| %s | %s | %s | %.4f | %.4f | %s | %s |" % (key[0], key[1], key[2], new[key][0], new[key][1],
                     "%.4f" % o[0] if o else "-", "%.4f" % o[1] if o else "-"))
    return lines


def _markdown(result, args, new, old, summaries, best) -> str:
    s0 = summaries[best]
    lines = ["# QAT of the %s student (`kdedge qat`)" % args.name, "",
             "Command: `%s` (%.1f min wall for this call; runs already in the run folder are reused: 'training s'"
             " below is each run's own time, one thread each, on a 2-core machine shared with the other runs)."
             % (result["command"], result["minutes"]), "",
             "## Recipe choice on validation (%d held-out training images: %s)" % (len(s0["val_images"]), ", ".join(s0["val_images"])), "",
             "Fake-quant PSNR-Y of the all-INT8 simulation (= the exported symmetric Q/DQ graph), standard protocol.", "",
             "Two validation subsets: the held-out photos and 8 synthetic text-and-graphics images"
             " (`kdedge.data.synthetic`, seed %d). FP32 = the student QAT started from; INT8 = the step kept." % 999, "",
             "Activations 'centred, refit N': `kdedge qat --centre --refit-steps N` (ReLU -> max(x, -amax/2), N float"
             " steps re-learning the borders, then QAT with the weights on their grid); 'shipped FP32' is the float"
             " graph of the weights kept (the bundle's FP32 file), where the run reports it.", "",
             "| weight lr | first conv | FP32 loss weight | graphics in training | activations | photos FP32 | photos INT8 | drop "
             "| photos shipped FP32 | graphics FP32 | graphics INT8 | drop | graphics shipped FP32 | kept step | training s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r, s in summaries.items():
        h = max(s["history"], key=lambda row: row["val_psnr"])
        p, g = s["val_by_subset"]["photos"], s["val_by_subset"]["graphics"]
        shipped = lambda v: "%.4f" % v["fp32_shipped"] if "fp32_shipped" in v else "-"  # noqa: E731
        refit_seconds = s["refit_history"][-1]["seconds"] if s.get("refit_history") else 0.0
        seconds = s["history"][-1]["seconds"] + refit_seconds
        lines.append("| %g%s | %s | %g | %d | %s | %.4f | %.4f | %.4f | %s | %.4f | %.4f | %.4f | %s | %d | %.0f |" % (
            r[0], " (chosen)" if r == best else "", "float" if r[1] else "INT8", r[2], r[3],
            "centred, refit %d" % r[4] if r[4] else "ReLU", p["fp32"], p["int8"], p["fp32"] - p["int8"], shipped(p),
            g["fp32"], g["int8"], g["fp32"] - g["int8"], shipped(g), h["step"], seconds))
    lines += ["", "## Test sets, measured once on the chosen recipe (the bundle's own accuracy rows)", "",
              "drop = FP32 of the same bundle minus the row; 'before' = the bundle shipped when this ran",
              "(kdedge/assets/%s_x2)." % args.name, ""] + set_rows_markdown(new, old, "QAT bundle PSNR")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
