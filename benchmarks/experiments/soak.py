"""Soak test of the runtime (not for CI): the live synthetic source for N minutes, watching for leaks.

Runs the real pipeline in this process on `test://?size=480x270&fps=30` (paced like a camera, so
frames are dropped whenever SR is slower than 30 FPS) into `null://` with the overlay on, and samples
resident memory (VmRSS) and open file descriptors every few seconds from a monitor thread. RSS
growth is measured from the end of a warm-up period (allocators and ONNX Runtime arenas settle
first) to the end. Passes when RSS grows < 5%, the fd count does not grow, and every frame is
accounted for (captured == processed + dropped, written == processed).

    nice -n 10 python benchmarks/experiments/soak.py [--minutes 10] [--bundle DIR] [--out benchmarks/experiments/results/soak.json]

Without --bundle it builds the anchor-cost bundle (scripts/anchor_bundle.py) in a temp folder.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def n_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def soak(bundle, minutes: float, warmup_s: float, threads, interval: float = 5.0, uri: str = "test://?size=480x270&fps=30"):
    from kdedge.runtime.backends import create_backend
    from kdedge.runtime.bundle import load_bundle
    from kdedge.runtime.pipeline import Pipeline, PipelineOptions

    b = load_bundle(bundle)
    p = Pipeline(b, [create_backend(b, "ort-cpu", "auto", threads=threads)], uri, "null://",
                 PipelineOptions(overlay=True, quiet=True))
    samples = []
    t_start = time.time()
    stop = threading.Event()

    def monitor():
        while not stop.wait(interval):
            s = p.stats.summary()
            samples.append({"t": round(time.time() - t_start, 1), "rss_kib": rss_kib(), "fds": n_fds(),
                            "captured": s["frames_captured"], "processed": s["frames_processed"],
                            "dropped": s["frames_dropped"]})
            if time.time() - t_start >= minutes * 60:
                p._finish("soak-time")

    fds_before = n_fds()
    mon = threading.Thread(target=monitor, daemon=True)
    mon.start()
    stats = p.run()
    stop.set()
    mon.join()
    fds_after = n_fds()
    base = [s for s in samples if s["t"] >= warmup_s] or samples
    rss0, rss1 = base[0]["rss_kib"], samples[-1]["rss_kib"]
    growth = (rss1 - rss0) / float(rss0)
    fds_seen = [s["fds"] for s in base]
    result = {
        "minutes": minutes, "source": uri, "bundle": b.name, "backend": stats["backend"],
        "frames_captured": stats["frames_captured"], "frames_processed": stats["frames_processed"],
        "frames_dropped": stats["frames_dropped"], "frames_written": stats["frames_written"],
        "fps": stats["fps"], "latency_ms": stats["latency_ms"], "model_ms": stats["model_ms"],
        "accounted": stats["accounted"] and stats["frames_written"] == stats["frames_processed"],
        "rss_kib_after_warmup": rss0, "rss_kib_end": rss1, "rss_growth": round(growth, 4),
        "rss_kib_max": max(s["rss_kib"] for s in samples),
        "fds_before": fds_before, "fds_after": fds_after, "fds_min_max_during": [min(fds_seen), max(fds_seen)],
        "warmup_s": warmup_s, "samples": samples,
    }
    # ONNX Runtime opens its telemetry database (3 fds) once per process on the first session, so
    # the fd baseline is the first sample after warm-up, not the count before the run.
    result["fds_baseline"] = base[0]["fds"]
    result["pass"] = bool(result["accounted"] and growth < 0.05 and fds_after <= base[0]["fds"]
                          and max(fds_seen) - min(fds_seen) <= 2)
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before the RSS baseline")
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle
        if bundle is None:
            bundle = Path(tmp) / "anchor"
            subprocess.run([sys.executable, str(REPO / "scripts" / "anchor_bundle.py"), str(bundle)], check=True,
                           stdout=subprocess.DEVNULL)
        result = soak(bundle, args.minutes, min(args.warmup, args.minutes * 30), args.threads)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
