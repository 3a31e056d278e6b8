"""Build the embedded teacher shipped in kdedge/assets/, and the student it teaches in minutes.

1. teacher: an `anchor` net 40 wide, 5 deep (74k MACs/LR px, Y channel), trained on T91 + BSD200
   with ground truth only (no third-party weights involved, so it can ship with the package): the
   teacher `kdedge distill` uses when given none;
2. student: `repanchor` 24x2 (fuses into an 11.4k-MAC anchor net), distilled from that teacher on
   T91 + BSD200 plus the teacher's labels on the HR images used as LR inputs (3000 steps). It was the
   shipped default student until the IMDN-distilled one of `benchmarks/experiments/distill_imdn.py`
   replaced it (shipped by `scripts/ship_bundle.py`); `--ship-student` puts it back;
3. Set5 / Set14 x2 for both (standard protocol, grey `bridge` as Y).

    nice -n 10 python scripts/distill_assets.py                  # both (about 1 h on 2 busy cores)
    nice -n 10 python scripts/distill_assets.py --skip-teacher   # reuse runs/assets/teacher

Writes kdedge/assets/teacher_x2.safetensors (weights + header, no training state), the student to
runs/assets/student/ (and kdedge/assets/student_x2.safetensors with --ship-student), and
benchmarks/results/distill_assets.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ASSETS = REPO / "kdedge" / "assets"


def sh(cmd):
    print("$", " ".join(cmd), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - t0


def evaluate(path: str):
    from kdedge.evaluate import evaluate as ev, load_upscaler

    up = load_upscaler(path, scale=2)
    return {name: round(ev(up, SHARED / "data" / "test" / name, progress=False)["psnr_y"], 3) for name in ("Set5", "Set14")}


def ship(src: Path, dst: Path, note: str) -> None:
    """Copy a checkpoint's deployable part (weights + header, no training state) into the package."""
    from kdedge.checkpoint import load_checkpoint_full, save_checkpoint

    model, header, _ = load_checkpoint_full(src)
    args = {k: v for k, v in header["model_args"].items() if k not in ("scale", "color")}
    save_checkpoint(dst, model.module, arch=header["arch"], model_args=args, scale=header["scale"], color=header["color"],
                    step=header["step"], best_metric=header.get("best_metric"), teacher=header.get("teacher"),
                    config=header.get("config"), extra={"note": note})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(REPO / "runs" / "assets"))
    ap.add_argument("--teacher-steps", type=int, default=2500)
    ap.add_argument("--student-steps", type=int, default=3000)
    ap.add_argument("--skip-teacher", action="store_true")
    ap.add_argument("--teacher-run", default="", help="use this finished teacher run folder")
    ap.add_argument("--ship-student", action="store_true", help="also replace kdedge/assets/student_x2.safetensors")
    args = ap.parse_args()
    train = SHARED / "data" / "train"
    data = [str(train / "T91"), str(train / "BSD200")]
    runs = Path(args.runs)
    common = ["--data"] + data + ["--val-holdout", "2", "--threads", "1", "--no-progress", "--batch", "16"]
    times = {}
    teacher_run = Path(args.teacher_run) if args.teacher_run else runs / "teacher"
    if not args.skip_teacher and not args.teacher_run:
        times["teacher"] = sh([sys.executable, "-m", "kdedge", "train", *common, "--student", "anchor", "--width", "40",
                               "--depth", "5", "--patch", "40", "--steps", str(args.teacher_steps),
                               "--eval-interval", "500", "--out", str(teacher_run)])
    ship(teacher_run / "last.safetensors", ASSETS / "teacher_x2.safetensors",
         "kdedge's own x2 Y teacher: anchor 40x5 trained on T91+BSD200 with ground truth only")
    student_run = runs / "student"
    times["student"] = sh([sys.executable, "-m", "kdedge", "distill", *common, "--teacher", "embedded",
                           "--student", "repanchor", "--patch", "48", "--steps", str(args.student_steps),
                           "--ema", "0.999", "--gt-weight", "1", "--kd-weight", "1", "--hr-as-lr",
                           "--unlabeled-ratio", "0.25", "--teacher-cache", "disk", "--eval-interval", "500",
                           "--out", str(student_run)])
    if args.ship_student:
        ship(student_run / "last.safetensors", ASSETS / "student_x2.safetensors",
             "kdedge's default x2 Y student: repanchor 24x2 distilled from the embedded teacher")
    from kdedge.checkpoint import load_checkpoint
    from kdedge.models.students import complexity

    result = {"protocol": "MATLAB-bicubic LR, uint8 SR, MATLAB Y, shave=2, grey bridge as Y", "wall_seconds": times}
    for name, path in (("teacher_x2", ASSETS / "teacher_x2.safetensors"), ("student_x2", student_run / "last.safetensors")):
        c = complexity(load_checkpoint(path).module)
        result[name] = {"psnr_y": evaluate(str(path)), "macs_per_lr_pixel": c["macs_per_lr_pixel"],
                        "params": c["params"], "bytes": path.stat().st_size}
    out = REPO / "benchmarks" / "results" / "distill_assets.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
