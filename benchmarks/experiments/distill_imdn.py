"""Acceptance run of issue 3: a student distilled from IMDN x2 vs its twin trained without a teacher.

Both runs use the same student, data (T91 + BSD200, two BSD200 images held out for validation),
seed, steps and schedule; the distilled run adds the teacher's cached outputs (IMDN x2, published
weights, loaded through kdedge.models.loading). Reported: Set5 and Set14 x2 Y-PSNR/SSIM of each
run's *last* checkpoint (never selected on the test sets), wall time, MACs per LR pixel, and the
teacher's and bicubic's figures under the same protocol (grey `bridge` as Y).

    nice -n 10 python benchmarks/experiments/distill_imdn.py                      # full: 60-minute budget per run
    nice -n 10 python benchmarks/experiments/distill_imdn.py --steps 3000 --parallel
    python benchmarks/experiments/distill_imdn.py --report-only                   # re-evaluate finished runs

Writes benchmarks/experiments/results/distill_imdn.json and .md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent  # benchmarks/experiments
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared"


def run_args(args, name: str, distil: bool):
    train = SHARED / "data" / "train"
    cmd = [sys.executable, "-m", "kdedge", "distill" if distil else "train",
           "--data", str(train / "T91"), str(train / "BSD200"), "--val-holdout", "2",
           "--student", args.student, "--width", str(args.width), "--depth", str(args.depth),
           "--steps", str(args.steps), "--batch", str(args.batch), "--patch", str(args.patch),
           "--lr", str(args.lr), "--ema", str(args.ema), "--eval-interval", str(args.eval_interval),
           "--seed", str(args.seed), "--threads", str(args.threads), "--no-progress",
           "--out", str(Path(args.runs) / name)]
    if args.branches:
        cmd += ["--branches", args.branches]
    if args.recycle_interval:
        cmd += ["--recycle-interval", str(args.recycle_interval)]
    if distil:
        cmd += ["--teacher", args.teacher, "--gt-weight", str(args.gt_weight), "--kd-weight", str(args.kd_weight),
                "--teacher-cache", "disk"]
        if args.hr_as_lr or args.extra_lr:
            cmd += ["--unlabeled-ratio", str(args.unlabeled_ratio)]
            cmd += ["--hr-as-lr"] if args.hr_as_lr else ["--no-hr-as-lr"]
            if args.extra_lr:
                cmd += ["--extra-lr"] + args.extra_lr
        else:
            cmd += ["--no-hr-as-lr", "--unlabeled-ratio", "0"]
    return cmd


def evaluate(spec: str, scale: int = 2):
    from kdedge.evaluate import evaluate as ev, load_upscaler

    up = load_upscaler(spec, scale=scale)
    out = {}
    for name in ("Set5", "Set14"):
        r = ev(up, SHARED / "data" / "test" / name, progress=False)
        out[name] = {"psnr_y": round(r["psnr_y"], 3), "ssim_y": round(r["ssim_y"], 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default=str(SHARED / "weights" / "IMDN_x2.pth"))
    ap.add_argument("--student", default="repanchor")
    ap.add_argument("--width", type=int, default=24)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--branches", default="conv3x3,conv1x1,identity")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--gt-weight", type=float, default=0.5)
    ap.add_argument("--kd-weight", type=float, default=0.5)
    ap.add_argument("--hr-as-lr", action="store_true", help="also distil on HR images used as LR inputs (teacher labels only)")
    ap.add_argument("--extra-lr", nargs="+", default=[],
                    help="folders whose images the teacher labels as LR inputs (no ground truth), e.g. T91's HR images")
    ap.add_argument("--unlabeled-ratio", type=float, default=0.25)
    ap.add_argument("--distilled-name", default="distilled", help="run (and row) name of the distilled run")
    ap.add_argument("--only", choices=("both", "distilled", "twin"), default="both",
                    help="train only one of the pair; the report still evaluates both run folders")
    ap.add_argument("--eval-interval", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recycle-interval", type=int, default=0,
                    help="re-initialise dead ReLU channels every N steps, in both runs (kdedge distill --recycle-interval)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parallel", action="store_true", help="run both trainings at once (2 cores)")
    ap.add_argument("--runs", default=str(REPO / "runs" / "distill_imdn"))
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--no-report", action="store_true", help="train only (the other run of the pair is not ready yet)")
    ap.add_argument("--out", default=str(HERE / "results" / "distill_imdn"))
    args = ap.parse_args()

    names = {args.distilled_name: True, "twin": False}
    timings = {}
    if not args.report_only:
        procs = {}
        for name, distil in names.items():
            if args.only != "both" and (args.only == "twin") == distil:
                continue
            Path(args.runs).mkdir(parents=True, exist_ok=True)
            log = open(Path(args.runs) / ("%s.log" % name), "w")
            cmd = run_args(args, name, distil)
            print("$", " ".join(cmd), flush=True)
            procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), time.time())
            if not args.parallel:
                p, t0 = procs[name]
                if p.wait() != 0:
                    sys.exit("%s run failed, see %s/%s.log" % (name, args.runs, name))
                timings[name] = time.time() - t0
        for name, (p, t0) in procs.items():
            if name not in timings:
                if p.wait() != 0:
                    sys.exit("%s run failed, see %s/%s.log" % (name, args.runs, name))
                timings[name] = time.time() - t0

    if args.no_report:
        return
    from kdedge.checkpoint import load_checkpoint
    from kdedge.models.students import complexity

    rows = {}
    for name in names:
        ck = Path(args.runs) / name / "last.safetensors"
        model = load_checkpoint(ck)
        cfg = model.meta["config"]
        metrics = list(__import__("csv").DictReader(open(Path(args.runs) / name / "metrics.csv")))
        rows[name] = {
            "checkpoint": str(ck), "steps": model.meta["step"], "train_seconds": float(metrics[-1]["seconds"]),
            "wall_seconds": round(timings.get(name, 0.0), 1),
            "macs_per_lr_pixel": complexity(model.module)["macs_per_lr_pixel"],
            "params_deployed": complexity(model.module)["params"],
            "config": {k: cfg.get(k) for k in ("student", "width", "depth", "branches", "batch", "patch", "lr", "ema",
                                               "gt_weight", "kd_weight", "hr_as_lr", "extra_lr", "unlabeled_ratio",
                                               "steps", "seed", "teacher", "recycle_interval", "recycle_until")},
            "results": evaluate(str(ck)),
        }
        print(name, rows[name]["results"], flush=True)
    rows["teacher_imdn_x2"] = {"results": evaluate(args.teacher)}
    rows["bicubic"] = {"results": evaluate("bicubic")}
    gain = {s: round(rows[args.distilled_name]["results"][s]["psnr_y"] - rows["twin"]["results"][s]["psnr_y"], 3)
            for s in ("Set5", "Set14")}
    result = {"protocol": "MATLAB-bicubic LR, uint8 SR, MATLAB Y, shave=2, grey bridge as Y; last checkpoints",
              "rows": rows, "distilled_minus_twin": gain,
              "date": time.strftime("%Y-%m-%d %H:%M"), "load_average_at_report": list(__import__("os").getloadavg())}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| run | Set5 x2 | Set14 x2 | MACs/LR px | steps | train time |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        res = r["results"]
        lines.append("| %s | %.2f / %.4f | %.2f / %.4f | %s | %s | %s |" % (
            name, res["Set5"]["psnr_y"], res["Set5"]["ssim_y"], res["Set14"]["psnr_y"], res["Set14"]["ssim_y"],
            "%.0f" % r["macs_per_lr_pixel"] if "macs_per_lr_pixel" in r else "-",
            r.get("steps", "-"), "%.0f s" % r["train_seconds"] if "train_seconds" in r else "-"))
    lines.append("")
    lines.append("distilled - twin: Set5 %+.3f dB, Set14 %+.3f dB" % (gain["Set5"], gain["Set14"]))
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
