"""Issue 14's long schedules on a lent GPU machine: one prepared call, every run at once, then QAT.

A session lent a GPU gets 15 minutes of it, start-up included, so this script is the whole call: it
trains the candidate students side by side on the one GPU (each process a `kdedge train` or `kdedge
distill` of its own, a CPU core feeding it patches), fits the schedule to the time it is given, then
fine-tunes the distilled ones with `kdedge qat`, and packs the run folders into one archive. The test
sets are not there; they are scored afterwards, on the development machine, from the archive
(`--report RUNS`). Recipe choices are read off the runs' validation split (the last 8 BSD200 images),
never off Set5 or Set14.

    # on the GPU machine (the training images travel as lossless WebP: the PNG/BMP originals are over
    # the call's 64 MiB; `--pack` writes them, pixel-identical, into DIR)
    python benchmarks/experiments/gpu_long.py --pack .gpudata                       # here, once
    python benchmarks/experiments/gpu_long.py --data .gpudata --out $OUT --budget 540 # there
    python benchmarks/experiments/gpu_long.py --report runs/gpu1/gpu_long           # here, from the unpacked archive

The runs (all `repanchor`, RepVGG branches, batch 64, 48 px LR patches, AdamW 1e-3 cosine to 1e-5,
EMA 0.999, FP32 with TF32 off): 16x5 (12,240 MACs/LR px) distilled from IMDN x2 (0.5 GT + 0.5 cached
teacher output) and its twin without a teacher, two seeds each; 16x5 distilled with the teacher's
labels on the HR images used as LR inputs too (a quarter of each batch), two seeds; 16x4 (9,936 MACs,
today's default shape) distilled, one seed.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared"

COMMON = ["--student", "repanchor", "--branches", "conv3x3,conv1x1,identity", "--batch", "64", "--patch", "48",
          "--lr", "1e-3", "--min-lr", "1e-5", "--ema", "0.999", "--val-holdout", "8", "--no-amp",
          "--no-progress", "--no-plot", "--threads", "1", "--log-interval", "50"]
KD = ["--gt-weight", "0.5", "--kd-weight", "0.5", "--teacher-cache", "memory"]
HR_AS_LR = ["--hr-as-lr", "--unlabeled-ratio", "0.25"]


def runs(teacher: str):
    """name -> (command, extra flags). The twins differ from the distilled runs by the teacher alone."""
    t = ["--teacher", teacher] + KD
    return {
        "d5_kd_s0": ("distill", ["--width", "16", "--depth", "5", "--seed", "0"] + t),
        "d5_kd_s1": ("distill", ["--width", "16", "--depth", "5", "--seed", "1"] + t),
        "d5_twin_s0": ("train", ["--width", "16", "--depth", "5", "--seed", "0"]),
        "d5_twin_s1": ("train", ["--width", "16", "--depth", "5", "--seed", "1"]),
        "d5_kdhr_s0": ("distill", ["--width", "16", "--depth", "5", "--seed", "0"] + t + HR_AS_LR),
        "d5_kdhr_s1": ("distill", ["--width", "16", "--depth", "5", "--seed", "1"] + t + HR_AS_LR),
        "d4_kd_s0": ("distill", ["--width", "16", "--depth", "4", "--seed", "0"] + t),
    }


# QAT of the distilled runs: the shipped default's recipe (benchmarks/experiments/results/qat_default.md).
QAT_FLAGS = ["--steps", "5000", "--batch", "16", "--float-first-conv"]


def log(msg: str) -> None:
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def launch(cmd, logfile: Path, env) -> subprocess.Popen:
    logfile.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(cmd, stdout=open(logfile, "w"), stderr=subprocess.STDOUT, env=env, cwd=str(REPO))


def wait_all(procs, deadline: float, label: str):
    """Wait for every process; at `deadline` send SIGTERM (the trainer then saves last.safetensors)."""
    termed = False
    while any(p.poll() is None for p in procs.values()):
        if time.time() > deadline and not termed:
            log("%s: deadline reached, SIGTERM to %d runs still going" % (label, sum(p.poll() is None for p in procs.values())))
            for p in procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            termed = True
        if termed and time.time() > deadline + 30:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
        time.sleep(2)
    return {name: p.returncode for name, p in procs.items()}


def read_metrics(metrics: Path) -> list:
    with open(metrics) as f:
        return list(csv.DictReader(f))


def step_ms(rows: list) -> float:
    """Median ms per step of a run's metrics rows, the first rows (start-up) left out."""
    ms = [float(r["ms_per_step"]) for r in rows if r.get("ms_per_step")]
    return statistics.median(ms[2:] or ms)


def pack(out: Path, work: Path, name: str) -> None:
    tmp = out / (name + ".partial")
    with tarfile.open(str(tmp), "w:gz") as tar:
        tar.add(str(work), arcname="gpu_long")
    os.replace(str(tmp), str(out / name))
    log("packed %s (%.1f MB)" % (out / name, (out / name).stat().st_size / 1e6))


def on_device(args) -> int:
    t0 = time.time()
    deadline = t0 + args.budget
    out = Path(args.out)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", NVIDIA_TF32_OVERRIDE="0", OMP_NUM_THREADS="1")
    folders = [str(Path(args.data) / "T91"), str(Path(args.data) / "BSD200")]
    data = ["--data"] + folders  # kdedge train/distill: one --data with several folders
    qat_data = ["--data", folders[0], "--data", folders[1]]  # kdedge qat: --data per folder
    teacher = str(Path(args.data) / "IMDN_x2.pth")
    plan = runs(teacher)
    if args.only:
        plan = {k: v for k, v in plan.items() if k in args.only}
    py = [sys.executable, "-m", "kdedge"]

    # 1. pilot: every run for a few hundred steps at once, to measure the step time under this contention
    procs = {n: launch(py + [c] + COMMON + f + data + ["--steps", str(args.pilot_steps), "--eval-interval",
                                                        str(args.pilot_steps), "--device", args.device, "--out", str(work / "pilot" / n)],
                        work / "logs" / ("pilot_" + n + ".log"), env) for n, (c, f) in plan.items()}
    codes = wait_all(procs, t0 + 120, "pilot")
    ms = {}
    for n, rc in codes.items():
        if rc == 0:
            ms[n] = step_ms(read_metrics(work / "pilot" / n / "metrics.csv"))
        else:
            log("pilot %s FAILED (exit %s):\n%s" % (n, rc, (work / "logs" / ("pilot_" + n + ".log")).read_text()[-3000:]))
    if not ms:
        return 1
    pilot_s = time.time() - t0
    train_s = (args.budget - pilot_s) * args.train_share
    # one step count for all runs of a shape (the distilled-vs-twin pairs must match), from the slowest
    steps = {}
    for n in ms:
        shape = n.split("_")[0]
        s = int(train_s * 1000.0 / max(ms[m] for m in ms if m.split("_")[0] == shape) * 0.88) // 500 * 500
        steps[n] = max(s, 200)
    log("pilot done in %.0f s; ms/step %s; steps %s" % (pilot_s, json.dumps({k: round(v, 1) for k, v in ms.items()}), json.dumps(steps)))

    # 2. the long runs; a small pytest of the training code rides along on the spare cores
    t_train = time.time()
    procs = {n: launch(py + [plan[n][0]] + COMMON + plan[n][1] + data + [
        "--steps", str(steps[n]), "--eval-interval", str(max(steps[n] // 10, 500)), "--device", args.device,
        "--out", str(work / "runs" / n)], work / "logs" / (n + ".log"), env) for n in steps}
    tests = None
    if args.pytest:
        tests = launch([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"] + args.pytest,
                       work / "logs" / "pytest_gpu.log", dict(env, OMP_NUM_THREADS="2"))
    codes = wait_all(procs, t_train + train_s + 25, "training")
    log("training done in %.0f s: %s" % (time.time() - t_train, codes))
    pack(out, work, "gpu_long_train.tar.gz")

    # 3. QAT of the distilled runs (from their validation-best checkpoint), in the time that is left
    qat = {}
    for n in steps:
        if plan[n][0] != "distill" or not (work / "runs" / n / "best.safetensors").is_file():
            continue
        qat[n] = launch(py + ["qat", str(work / "runs" / n / "best.safetensors")] + QAT_FLAGS + qat_data + [
            "--device", args.device, "--threads", "1", "--out", str(work / "qat" / n)], work / "logs" / ("qat_" + n + ".log"), env)
    codes = wait_all(qat, deadline - 25, "qat")
    log("QAT done: %s" % codes)
    if tests is not None:
        if tests.poll() is None:
            tests.kill()
        tests.wait()
        log("pytest on the GPU machine exit %s" % tests.returncode)
    pack(out, work, "gpu_long.tar.gz")
    os.remove(str(out / "gpu_long_train.tar.gz"))
    log("all done in %.0f s" % (time.time() - t0))
    return 0


def pack_data(dest: str) -> int:
    """Training images as lossless WebP (checked pixel-identical) + the IMDN x2 weights, for the call."""
    import shutil

    import cv2
    import numpy as np

    d = Path(dest)
    for folder in ("T91", "BSD200"):
        (d / folder).mkdir(parents=True, exist_ok=True)
        for src in sorted((SHARED / "data" / "train" / folder).iterdir()):
            img = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
            if img is None:
                continue
            dst = d / folder / (src.stem + ".webp")
            cv2.imwrite(str(dst), img, [cv2.IMWRITE_WEBP_QUALITY, 101])  # > 100: lossless
            back = cv2.imread(str(dst), cv2.IMREAD_UNCHANGED)
            if back is None or back.shape != img.shape or not np.array_equal(back, img):
                raise SystemExit("%s did not survive lossless WebP" % src)
    shutil.copy(str(SHARED / "weights" / "IMDN_x2.pth"), str(d / "IMDN_x2.pth"))
    size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
    print("packed %s: %.1f MB" % (d, size / 1e6))
    return 0


# --------------------------------------------------------------------------- the report (development machine)

def _evaluate(spec: str, folders) -> dict:
    from kdedge.evaluate import evaluate, load_upscaler

    up = load_upscaler(spec, scale=2)
    return {name: round(evaluate(up, folder, progress=False)["psnr_y"], 3) for name, folder in folders.items()}


def _metrics(run: Path) -> dict:
    rows = read_metrics(run / "metrics.csv")
    vals = [float(r["val_psnr"]) for r in rows if r.get("val_psnr")]
    return {"steps": int(rows[-1]["step"]), "seconds": float(rows[-1]["seconds"]), "ms_per_step": round(step_ms(rows), 1),
            "val_last": vals[-1], "val_best": max(vals)}


def report(root: Path, calendar: Path) -> int:
    """Score every run's last checkpoint on Set5/Set14 (once, for the report) and the Vid4 calendar
    clip (every 4th frame: a set neither training nor the test sets touch), export each QAT checkpoint
    with INT8 and read its accuracy rows, and write benchmarks/experiments/results/gpu_long.{json,md}."""
    import tempfile

    test = SHARED / "data" / "test"
    with tempfile.TemporaryDirectory() as tmp:
        frames = sorted(calendar.glob("*.png"))[::4]
        for f in frames:
            os.symlink(str(f), os.path.join(tmp, f.name))
        folders = {"Set5": test / "Set5", "Set14": test / "Set14", "calendar/4": Path(tmp)}
        runs_ = {}
        for run in sorted((root / "runs").iterdir()):
            runs_[run.name] = dict(_metrics(run), **_evaluate(str(run / "last.safetensors"), folders))
            log("%s %s" % (run.name, runs_[run.name]))
        runs_["shipped default (CPU, 16x4, 60k steps x 16)"] = _evaluate(str(REPO / "kdedge" / "assets" / "student_x2.safetensors"), folders)
    qat = {}
    for q in sorted((root / "qat").iterdir()):
        summary = json.loads((q / "qat.json").read_text())
        bundle = q / "bundle"
        if not (bundle / "manifest.json").is_file():
            subprocess.run([sys.executable, "-m", "kdedge", "export", str(q / "qat.safetensors"), "--int8", "--u8s8", "--out", str(bundle),
                            "--overwrite", "--report", str(test / "Set5"), "--report", str(test / "Set14")],
                           check=True, cwd=str(REPO), stdout=subprocess.DEVNULL)
        rows = json.loads((bundle / "manifest.json").read_text())["accuracy"]["rows"]
        test_rows = {"%s %s" % (Path(str(r["dataset"])).name, r["precision"]): (r["psnr_vs_gt"], r["drop_db"])
                     for r in rows if Path(str(r.get("dataset", ""))).name in ("Set5", "Set14") and r.get("backend", "ort-cpu") == "ort-cpu"}
        qat[q.name] = {"val_fp32": summary["val_psnr_fp32"], "val_int8_best": summary["val_psnr_int8_best"],
                       "val_drop": round(summary["val_psnr_fp32"] - summary["val_psnr_int8_best"], 4),
                       "steps": summary["history"][-1]["step"], "seconds": summary["history"][-1]["seconds"], "test": test_rows}
        log("%s %s" % (q.name, qat[q.name]))
    result = {"runs": runs_, "qat": qat, "pairs": _pairs(runs_)}
    out = HERE / "results" / "gpu_long"
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    log("wrote %s and .md" % out.with_suffix(".json"))
    return 0


def markdown(result: dict) -> str:
    lines = ["# Long schedules on a lent H200 (issue 14, session 5)", "",
             "Command on the GPU machine: `python3 benchmarks/experiments/gpu_long.py --data .gpudata --out $OUT --budget 525"
             " --pytest ...` (one call, 507 s); here: `python benchmarks/experiments/gpu_long.py --report runs/gpu1/gpu_long`.",
             "All seven runs shared the one GPU at once, one process and one CPU core each. Test sets scored once, on each"
             " run's last checkpoint (never selected on them); validation = the last 8 BSD200 images (held out of training);"
             " calendar/4 = every 4th frame of Vid4 calendar (in neither training nor the test sets). Y-PSNR, standard protocol,"
             " grey `bridge` as Y.", "",
             "| run | steps x batch 64 | ms/step | validation | Set5 x2 | Set14 x2 | calendar/4 |", "|---|---|---|---|---|---|---|"]
    for name, r in result["runs"].items():
        lines.append("| %s | %s | %s | %s | %.3f | %.3f | %.3f |" % (
            name, r.get("steps", "-"), r.get("ms_per_step", "-"), "%.3f" % r["val_last"] if "val_last" in r else "-",
            r["Set5"], r["Set14"], r["calendar/4"]))
    lines += ["", "Distilled minus twin (same recipe, steps and seed), per seed, then mean +- half the range:", "",
              "| teacher labels | validation | Set5 | Set14 | calendar/4 |", "|---|---|---|---|---|"]
    for variant, label in (("kd", "IMDN x2 output (0.5 GT + 0.5 teacher)"), ("kdhr", "same + teacher labels on HR-as-LR (25% of each batch)")):
        d = result["pairs"].get(variant, {})
        lines.append("| %s | %s |" % (label, " | ".join("%s -> %+.3f +- %.3f" % (", ".join("%+.3f" % v for v in d[k]["per_seed"]), d[k]["mean"],
                                                                                    d[k]["half_range"]) for k in ("val_last", "Set5", "Set14", "calendar/4"))))
    lines += ["", "QAT on the GPU (`kdedge qat best.safetensors --float-first-conv`, 5000 steps, batch 16), exported with"
              " `--int8 --u8s8`; drop = the bundle's FP32 minus the row (ONNX Runtime CPU):", "",
              "| run | validation drop | Set5 FP32 | Set5 INT8 drop | Set5 U8S8 drop | Set14 FP32 | Set14 INT8 drop | Set14 U8S8 drop | QAT s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, q in result["qat"].items():
        t = q["test"]
        lines.append("| %s | %.4f | %.3f | %.4f | %.4f | %.3f | %.4f | %.4f | %.0f |" % (
            name, q["val_drop"], t["Set5 fp32"][0], t["Set5 int8"][1], t["Set5 int8_u8s8"][1], t["Set14 fp32"][0],
            t["Set14 int8"][1], t["Set14 int8_u8s8"][1], q["seconds"]))
    return "\n".join(lines) + "\n"


def _pairs(runs_: dict) -> dict:
    """Distilled minus twin, per seed, and the mean and half-range over seeds."""
    out = {}
    for variant in ("kd", "kdhr"):
        diffs = {}
        for key in ("val_last", "Set5", "Set14", "calendar/4"):
            d = [round(runs_["d5_%s_s%d" % (variant, s)][key] - runs_["d5_twin_s%d" % s][key], 3) for s in (0, 1)
                 if "d5_%s_s%d" % (variant, s) in runs_ and "d5_twin_s%d" % s in runs_]
            if d:
                diffs[key] = {"per_seed": d, "mean": round(sum(d) / len(d), 3), "half_range": round((max(d) - min(d)) / 2, 3)}
        out[variant] = diffs
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--pack", metavar="DIR", help="write the training images (lossless WebP) and the teacher into DIR, then stop")
    ap.add_argument("--data", default=".gpudata", help="folder written by --pack")
    ap.add_argument("--out", default=os.environ.get("OUT", "runs/gpu_long_out"), help="where the archive goes")
    ap.add_argument("--work", default="/tmp/gpu_long", help="run folders (packed into the archive)")
    ap.add_argument("--budget", type=float, default=540, help="seconds for the whole call")
    ap.add_argument("--train-share", type=float, default=0.70, help="share of the time after the pilot spent training")
    ap.add_argument("--pilot-steps", type=int, default=300)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--only", nargs="+", help="run only these names")
    ap.add_argument("--pytest", nargs="*", default=[], help="test files to run beside the training")
    ap.add_argument("--report", metavar="RUNS", help="score an unpacked archive's runs here (test sets, calendar, QAT exports)")
    ap.add_argument("--markdown-only", action="store_true", help="with --report: rewrite the .md from the .json, scoring nothing")
    ap.add_argument("--calendar", default=str(SHARED / "data" / "video" / "calendar"), help="Vid4 calendar frames (for --report)")
    args = ap.parse_args()
    if args.pack:
        return pack_data(args.pack)
    if args.report:
        if args.markdown_only:
            result = json.loads((HERE / "results" / "gpu_long.json").read_text())
            (HERE / "results" / "gpu_long.md").write_text(markdown(result))
            return 0
        return report(Path(args.report), Path(args.calendar))
    return on_device(args)


if __name__ == "__main__":
    sys.exit(main())
