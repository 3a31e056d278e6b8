"""How student shape and threading decide frame rate on this CPU: a sweep behind the choice of student.

For `anchor` students of several widths and depths (random weights: speed does not depend on them),
exported by kdedge's own exporter, this measures at one LR size (default 540x960):

- model-only FPS: the network on a tensor, one ONNX Runtime session with 2 intra-op threads;
- end-to-end FPS, serial: BGR frame in, BGR frame out (`SRProcessor.process`: MATLAB-Y split,
  network, bicubic chroma, merge), one frame after another, the session on 2 threads;
- end-to-end FPS, frame-parallel: 2 Python threads, each with its own 1-thread session, each taking
  the next frame: throughput, not latency. This decides whether the camera pipeline should run
  frames in parallel instead of giving ONNX Runtime both cores for one frame at a time.

Rounds are interleaved (every configuration once per round, then again), median and range reported,
so the ratios hold even on a busy machine. One configuration is also profiled op by op (ORT's
profiler), showing where a frame's time goes. Results: benchmarks/experiments/results/student_speed.{json,md}.

    python benchmarks/experiments/student_speed.py                          # about 3 minutes
    python benchmarks/experiments/student_speed.py --shapes 16x1 16x4 24x2 --size 270x480
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

HERE = Path(__file__).resolve().parent  # benchmarks/experiments
sys.path.insert(0, str(HERE.parent))  # the suite's benchmarks/common.py: machine description, JSON writer
from common import load_avg, machine, write_json  # noqa: E402

from kdedge.runtime.bench import interleaved_rounds  # noqa: E402

DEFAULT_SHAPES = ("8x2", "16x1", "16x2", "16x4", "24x2", "32x1", "32x2")


def export_student(width: int, depth: int, folder: Path) -> Path:
    """FP32 ONNX of an x2 Y `anchor` student (seed 0), through kdedge.export like every shipped model."""
    import torch

    from kdedge.export.onnx_export import export_onnx
    from kdedge.models import create_model
    from kdedge.models.descriptor import SRModel

    torch.manual_seed(0)
    net = create_model("anchor", scale=2, color="y", width=width, depth=depth).eval()
    path = folder / ("anchor_%dx%d.onnx" % (width, depth))
    export_onnx(SRModel(module=net, arch="anchor", scale=2, color="y"), path)
    return path


def processor(onnx_path: Path, threads: int):
    from kdedge.runtime.backends import open_model
    from kdedge.runtime.bundle import ModelSpec
    from kdedge.runtime.processor import SRProcessor

    # a sweep of random-weight students has no manifest: the model description is built
    return SRProcessor(ModelSpec(scale=2, color="y"), open_model(onnx_path, "ort-cpu", threads=threads).activate())


def block(fn: Callable[[], int], seconds: float) -> float:
    """Frames per second of `fn` (which processes and returns a number of frames) over >= `seconds`."""
    t0, n = time.perf_counter(), 0
    while True:
        n += fn()
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def parallel_runner(procs, frame: np.ndarray, frames_each: int) -> Callable[[], int]:
    """All workers process `frames_each` frames at once, each on its own thread and session."""
    def work(p):
        for _ in range(frames_each):
            p.process(frame)

    def run() -> int:
        threads = [threading.Thread(target=work, args=(p,)) for p in procs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return frames_each * len(procs)
    return run


def profile_ops(onnx_path: Path, x: np.ndarray, runs: int = 10) -> List[Dict[str, float]]:
    """Mean ms per run of each op type (ORT profiler, 2 threads), largest first: the runtime's ONNX
    Runtime backend with ORT's profiler switched on (an ORT feature, so this stays ORT-specific)."""
    from kdedge.runtime.backends.ort import OrtBackend

    backend = OrtBackend(onnx_path, provider="cpu", threads=2, session_options={
        "enable_profiling": True, "profile_file_prefix": str(Path(tempfile.gettempdir()) / "kdedge_student_speed")})
    with backend:
        for _ in range(runs):
            backend.infer({"lr": x})
        trace = backend.session.end_profiling()
    per_op = collections.Counter()
    for ev in json.load(open(trace)):
        if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
            per_op["%s (%s)" % (ev["args"]["op_name"], ev["name"][: -len("_kernel_time")])] += ev["dur"]
    os.unlink(trace)
    total = sum(per_op.values())
    return [{"op": k, "ms": round(v / runs / 1000.0, 2), "share": round(v / total, 3)} for k, v in per_op.most_common()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", nargs="+", default=list(DEFAULT_SHAPES), help="WIDTHxDEPTH of anchor students")
    ap.add_argument("--size", default="540x960", help="LR input HxW")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--block", type=float, default=0.6, help="seconds per timed block")
    ap.add_argument("--profile", default="16x4", help="shape to profile op by op ('' to skip)")
    ap.add_argument("--out", default=str(HERE / "results" / "student_speed"))
    args = ap.parse_args(argv)

    from kdedge.models import create_model
    from kdedge.models.students import complexity

    h, w = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    x = rng.random((1, 1, h, w), dtype=np.float32)
    load_before = load_avg()
    tmp = Path(tempfile.mkdtemp(prefix="kdedge_student_speed_"))
    configs = {}
    for shape in args.shapes:
        width, depth = (int(v) for v in shape.split("x"))
        path = export_student(width, depth, tmp)
        macs = complexity(create_model("anchor", width=width, depth=depth))["macs_per_lr_pixel"]
        serial = processor(path, threads=2)
        workers = [processor(path, threads=1) for _ in range(2)]
        runners = {
            "model": lambda s=serial: (s.backend.infer({"lr": x}, check_inputs=False), 1)[1],
            "e2e_serial": lambda s=serial: (s.process(frame), 1)[1],
            "e2e_2workers": parallel_runner(workers, frame, frames_each=2),
        }
        for fn in runners.values():  # warm-up: ORT allocates and picks kernels on the first runs
            fn()
            fn()
        configs[shape] = {"width": width, "depth": depth, "macs_per_lr_pixel": macs, "runners": runners,
                          "fps": {k: [] for k in runners}}
        print("exported and warmed up %s (%d MACs/LR px)" % (shape, macs), flush=True)

    t0 = time.time()
    jobs = [((shape, mode), lambda fn=fn: block(fn, args.block))
            for shape, c in configs.items() for mode, fn in c["runners"].items()]
    fps = interleaved_rounds(jobs, args.rounds, after_round=lambda r: print(
        "round %d/%d done (%.0f s)" % (r + 1, args.rounds, time.time() - t0), flush=True))
    for (shape, mode), values in fps.items():
        configs[shape]["fps"][mode] = values

    rows = []
    for shape, c in configs.items():
        row = {"shape": shape, "width": c["width"], "depth": c["depth"], "macs_per_lr_pixel": c["macs_per_lr_pixel"]}
        for mode, v in c["fps"].items():
            row[mode] = {"median": round(float(np.median(v)), 2), "min": round(min(v), 2), "max": round(max(v), 2)}
        row["model_gmacs"] = round(c["macs_per_lr_pixel"] * h * w * row["model"]["median"] / 1e9, 1)
        row["parallel_gain"] = round(row["e2e_2workers"]["median"] / row["e2e_serial"]["median"], 3)
        rows.append(row)
    prof = None
    if args.profile:
        wd, dp = (int(v) for v in args.profile.split("x"))
        prof = {"shape": args.profile, "ops": profile_ops(export_student(wd, dp, tmp), x)}

    result = {"command": "python benchmarks/experiments/student_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "size": [h, w], "rounds": args.rounds, "machine": machine(), "load_average_before": load_before,
              "load_average_after": load_avg(), "date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows, "profile": prof}
    write_json(Path(args.out + ".json"), result)
    Path(args.out + ".md").write_text(render(result))
    print(render(result))
    return 0


def render(result) -> str:
    h, w = result["size"]
    lines = ["# Student shape and threading vs frame rate (%dx%d LR -> %dx%d, x2, Y)" % (h, w, 2 * h, 2 * w), "",
             "`%s`, %s; load average before %s, after %s. Random-weight `anchor` students exported by kdedge; "
             "ONNX Runtime CPU FP32. Median FPS over %d interleaved rounds (min-max)." % (
                 result["command"], result["date"], result["load_average_before"], result["load_average_after"],
                 result["rounds"]), "",
             "| width x depth | MACs / LR px | model FPS (2 threads) | GMAC/s | end-to-end FPS, serial (2 threads) "
             "| end-to-end FPS, 2 workers x 1 thread | workers / serial |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        f = lambda k: "%.1f (%.1f-%.1f)" % (r[k]["median"], r[k]["min"], r[k]["max"])  # noqa: E731
        lines.append("| %s | %s | %s | %.1f | %s | %s | x%.2f |" % (
            r["shape"], "{:,}".format(int(r["macs_per_lr_pixel"])), f("model"), r["model_gmacs"], f("e2e_serial"),
            f("e2e_2workers"), r["parallel_gain"]))
    if result.get("profile"):
        p = result["profile"]
        lines += ["", "Where the model's time goes (%s, ORT profiler, 2 threads, ms per frame):" % p["shape"], "",
                  "| op | ms | share |", "|---|---|---|"]
        lines += ["| %s | %.2f | %.0f%% |" % (o["op"], o["ms"], 100 * o["share"]) for o in p["ops"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
