"""Step time of plain training vs output distillation from the teacher cache vs an online teacher.

Issue 3's target: a cached-KD step costs at most 1.2x a plain step. The three kinds of step are
timed interleaved so that the load other processes put on a shared CPU hits them alike: plain and
cached-KD steps alternate one by one (the median of the per-pair ratios is the headline figure),
with a few online-teacher steps in every round; medians per kind are reported too. Every step is the trainer's own
work: sample patches (+ cached labels), forward, loss terms, backward, AdamW step.

    nice -n 10 python benchmarks/experiments/distill_steptime.py            # IMDN x2 teacher, anchor student
    python benchmarks/experiments/distill_steptime.py --images 8 --rounds 3 --threads 1  # quicker

Writes benchmarks/experiments/results/distill_steptime.json and prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from kdedge.distill.cache import TeacherCache, teacher_forward
from kdedge.distill.config import TrainConfig
from kdedge.distill.data import PatchSampler, folder_images, make_sample
from kdedge.distill.losses import loss_terms
from kdedge.models import create_model
from kdedge.models.loading import load_model

SHARED = Path(__file__).resolve().parents[3] / "shared"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default=str(SHARED / "weights" / "IMDN_x2.pth"))
    ap.add_argument("--data", default=str(SHARED / "data" / "train" / "BSD200"))
    ap.add_argument("--images", type=int, default=24, help="training images used (the cache is filled for these)")
    ap.add_argument("--student", default="anchor")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="plain/cached step pairs per round")
    ap.add_argument("--online-steps", type=int, default=2, help="online-teacher steps per round")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "distill_steptime.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    images = folder_images([args.data], 2, args.patch * 2)[: args.images]
    samples = [make_sample(im, 2, "y") for im in images]
    teacher = load_model(args.teacher)
    cache = TeacherCache(teacher, "y", mode="memory")
    t0 = time.perf_counter()
    cache.fill(samples, progress=False)
    fill_s = time.perf_counter() - t0
    lr_pixels = sum(s.lr.shape[1] * s.lr.shape[2] for s in samples)

    cl = torch.channels_last
    student = create_model(args.student, scale=2, color="y").to(memory_format=cl)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4)
    teacher.module.to(memory_format=cl)
    kinds = {
        "plain": (TrainConfig(gt_weight=1.0), PatchSampler(samples, [], args.patch, 2)),
        "cached_kd": (TrainConfig(gt_weight=0.5, kd_weight=0.5, teacher="x"), PatchSampler(samples, [], args.patch, 2, need_teacher=True)),
        "online_kd": (TrainConfig(gt_weight=0.5, kd_weight=0.5, teacher="x", teacher_cache="off"),
                      PatchSampler(samples, [], args.patch, 2, need_teacher_input=True)),
    }
    rng = np.random.default_rng(0)

    def step(kind: str) -> None:
        cfg, sampler = kinds[kind]
        batch = {k: torch.from_numpy(v) for k, v in sampler.sample(args.batch, rng).items()}
        t_out = None
        if kind == "online_kd":
            with torch.no_grad():
                t_out = teacher_forward(teacher, batch["teacher_input"].contiguous(memory_format=cl), "y")
        out = student(batch["lr"].contiguous(memory_format=cl))
        terms = loss_terms(cfg, out, batch, None, t_out)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()

    times = {k: [] for k in kinds}
    for kind in kinds:  # warm-up
        step(kind)
    paired = []
    for _ in range(args.rounds):
        # plain and cached KD alternate step by step (paired: each pair sees the same machine load),
        # then a few online-teacher steps.
        for _ in range(args.steps):
            pair = []
            for kind in ("plain", "cached_kd"):
                t = time.perf_counter()
                step(kind)
                pair.append(time.perf_counter() - t)
                times[kind].append(pair[-1])
            paired.append(pair[1] / pair[0])
        for _ in range(args.online_steps):
            t = time.perf_counter()
            step("online_kd")
            times["online_kd"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    result = {
        "what": "median ms per training step, interleaved rounds",
        "student": args.student, "teacher": Path(args.teacher).name, "batch": args.batch, "patch": args.patch,
        "images": len(samples), "rounds": args.rounds, "steps_per_round": args.steps,
        "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "ms_per_step": {k: round(v, 1) for k, v in med.items()},
        "ratio_to_plain": {k: round(v / med["plain"], 3) for k, v in med.items()},
        "cached_kd_over_plain_median_of_pairs": round(statistics.median(paired), 3),
        "cache_fill_s": round(fill_s, 1), "cache_fill_ms_per_mpixel_lr": round(1000 * fill_s / (lr_pixels / 1e6), 1),
        "cache_mb_float16": round(sum(s.teacher.nbytes for s in samples) / 1e6, 1),
        "load_average": list(__import__("os").getloadavg()),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("| step | ms | x plain |\n|---|---|---|")
    for k in kinds:
        print("| %s | %.1f | %.2f |" % (k, med[k], med[k] / med["plain"]))
    print("cached KD / plain, median of %d step pairs: %.3f" % (len(paired), statistics.median(paired)))
    print("cache: %d images, %.1f s, %.1f MB float16" % (len(samples), fill_s, result["cache_mb_float16"]))


if __name__ == "__main__":
    main()
