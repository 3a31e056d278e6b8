"""Which student becomes the default: candidates fine-tuned by the same QAT recipe, chosen on validation, tested once.

    python benchmarks/experiments/student_choice.py \
        --candidate shipped=kdedge/assets/student_x2.safetensors \
        --candidate hardtanh16x4=runs/ht16x4/distilled/last.safetensors \
        --candidate relu16x5_88k=runs/long16x5/distilled/last.safetensors --parallel

1. `kdedge qat CKPT` with the shipped default's recipe (lr 1e-4, first conv float, FP32 loss weight 0.5,
   32 synthetic graphics, 5000 steps; T91 + BSD200 with the last 8 images held out) per candidate, skipped
   when its run folder already has qat.json;
2. the choice is made on validation only (the held-out photos, and 8 synthetic text-and-graphics images
   as a guard): the candidate with the best symmetric INT8 PSNR on the photos (what a TensorRT user gets),
   among those at most 12.5k MACs per LR pixel whose graphics INT8 is within 0.05 dB of the best
   candidate's (a student that learned slides worse is not a default);
3. only the chosen one is exported (`kdedge export --int8 --u8s8 --fp16 --report Set5 --report Set14`);
   its test rows go next to the bundle shipped when this runs, in experiments/results/<out-name>.{json,md}.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
from qat_recipe import export_and_test, set_rows_markdown  # noqa: E402  (the sibling's export + test-row table)
MAX_MACS = 12500  # the budget: FSRCNN's 12.5k MACs per LR pixel
GRAPHICS_GUARD_DB = 0.05


def _qat_cmd(source: str, run: Path, args):
    cmd = [sys.executable, "-m", "kdedge", "qat", source, "--out", str(run), "--lr", "1e-4", "--fp32-weight", "0.5",
           "--float-first-conv", "--graphics", "32", "--steps", str(args.steps), "--threads", "1"]
    for d in args.data:
        cmd += ["--data", d]
    return cmd


def _macs(source: str) -> float:
    from kdedge.distill.qat import load_student
    from kdedge.models.students import complexity

    return complexity(load_student(source).module)["macs_per_lr_pixel"]


def choose(candidates: dict) -> str:
    """The name of the candidate `main` ships (see the module docstring), from {name: {"macs", "val_by_subset"}}."""
    fits = {n: c for n, c in candidates.items() if c["macs"] <= MAX_MACS}
    if not fits:
        raise SystemExit("no candidate within %d MACs per LR pixel" % MAX_MACS)
    best_graphics = max(c["val_by_subset"]["graphics"]["int8"] for c in fits.values())
    ok = {n: c for n, c in fits.items() if c["val_by_subset"]["graphics"]["int8"] >= best_graphics - GRAPHICS_GUARD_DB}
    return max(ok, key=lambda n: ok[n]["val_by_subset"]["photos"]["int8"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidate", action="append", required=True, metavar="NAME=CKPT",
                    help="a student checkpoint (or bundle folder) to compare; repeatable")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--data", nargs="+", default=[str(SHARED / "data" / "train" / d) for d in ("T91", "BSD200")])
    ap.add_argument("--runs", default="runs/student_choice", help="parent of the QAT run folders")
    ap.add_argument("--out-name", default="student_choice", help="results file stem")
    ap.add_argument("--parallel", action="store_true", help="fine-tune the candidates at once (one thread each)")
    args = ap.parse_args(argv)

    sources = dict(c.split("=", 1) for c in args.candidate)
    runs = {n: REPO / args.runs / n for n in sources}
    t0 = time.time()
    procs = []
    for name, source in sources.items():
        if (runs[name] / "qat.json").is_file():
            continue
        runs[name].mkdir(parents=True, exist_ok=True)
        cmd = _qat_cmd(source, runs[name], args)
        print("$", " ".join(cmd), flush=True)
        procs.append(subprocess.Popen(cmd, stdout=open(str(runs[name]) + ".log", "w"), stderr=subprocess.STDOUT, cwd=str(REPO)))
        if not args.parallel and procs[-1].wait() != 0:
            raise SystemExit("kdedge qat failed: see %s.log" % runs[name])
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("a kdedge qat run failed: see the .log files under %s" % (REPO / args.runs))
    cands = {}
    for name, source in sources.items():
        s = json.loads((runs[name] / "qat.json").read_text())
        cands[name] = {"source": source, "macs": _macs(source), "val_by_subset": s["val_by_subset"],
                       "kept_step": max(s["history"], key=lambda h: h["val_psnr"])["step"], "val_images": s["val_images"]}
    best = choose(cands)
    new, old = export_and_test(runs[best] / "qat.safetensors", runs[best] / "bundle", "default")
    result = {"command": "python benchmarks/experiments/student_choice.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "minutes": round((time.time() - t0) / 60, 1), "chosen": best, "candidates": cands,
              "test_rows_chosen": {"|".join(k): v for k, v in new.items()},
              "test_rows_shipped_before": {"|".join(k): v for k, v in old.items()}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / (args.out_name + ".json")).write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / (args.out_name + ".md")).write_text(_markdown(result, new, old))
    print("wrote", RESULTS / (args.out_name + ".md"))
    return 0


def _markdown(result, new, old) -> str:
    cands, best = result["candidates"], result["chosen"]
    any_c = next(iter(cands.values()))
    lines = ["# The default student: candidates after the same QAT recipe", "",
             "Command: `%s` (%.1f min wall for this call; QAT runs already in the run folder are reused)."
             % (result["command"], result["minutes"]), "",
             "## Choice on validation (%d held-out training images: %s; 8 synthetic graphics, seed 999)"
             % (len(any_c["val_images"]), ", ".join(any_c["val_images"])), "",
             "INT8 = the exported symmetric Q/DQ graph (TensorRT's form) simulated exactly, at the QAT step kept;"
             " FP32 = the student before QAT. Rule: best photos INT8 among candidates <= %d MACs whose graphics INT8 is"
             " within %.2f dB of the best." % (MAX_MACS, GRAPHICS_GUARD_DB), "",
             "| candidate | MACs / LR px | photos FP32 | photos INT8 | drop | graphics FP32 | graphics INT8 | drop | kept step |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, c in cands.items():
        p, g = c["val_by_subset"]["photos"], c["val_by_subset"]["graphics"]
        lines.append("| %s%s | %.0f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %d |" % (
            name, " (chosen)" if name == best else "", c["macs"], p["fp32"], p["int8"], p["fp32"] - p["int8"],
            g["fp32"], g["int8"], g["fp32"] - g["int8"], c["kept_step"]))
    lines += ["", "## Test sets, measured once on the chosen student (its bundle's accuracy rows)", "",
              "drop = FP32 of the same bundle minus the row; 'before' = kdedge/assets/default_x2 when this ran.", ""]
    lines += set_rows_markdown(new, old, "chosen PSNR")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
