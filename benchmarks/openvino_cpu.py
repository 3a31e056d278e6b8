"""OpenVINO vs ONNX Runtime vs OpenCV's FSRCNN on this CPU, side by side in one interleaved run.

The measurement behind the OpenVINO backend (issue 11) and the README's speed table. Every row is the
camera pipeline of `kdedge.runtime.bench` (test:// frames, capture thread with the colour split, SR,
writer thread with the merge, null sink) plus the backend alone on the same frame (model-only), for:
- the default student at 540x960 -> 1080x1920 on OpenVINO (INT8 U8S8, INT8 symmetric, bf16, FP32 in f32)
  and ONNX Runtime (FP32, INT8 U8S8), with the Python colour path and with the whole-frame graph;
- the fast student at 1080x1920 -> 2160x3840 (4K output) on both engines;
- OpenCV's FSRCNN through `dnn_superres.upsample()` (BGR in, BGR out: its own end to end).
Rounds are interleaved (round 1 of every row, then round 2, ...) so load drift spreads over all rows;
ratios (vs FSRCNN, vs ONNX Runtime FP32) are taken within each round, then the median is reported.
Worker layouts: each row runs with 1 SR worker x 2 engine threads and 2 workers x 1 thread; the better
end to end is reported beside both.

    python benchmarks/openvino_cpu.py [--rounds 5] [--frames 90] [--quick]
Needs openvino, onnxruntime and opencv-contrib-python-headless (FSRCNN), i.e. the benchmark venv
(benchmarks/requirements.txt). Writes benchmarks/results/openvino_cpu.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from common import REPO, RESULTS, load_avg, machine, write_json
from kdedge.runtime.bench import interleaved_rounds

FSRCNN = REPO.parent / "shared" / "weights" / "FSRCNN_x2.pb"
HD, UHD = (540, 960), (1080, 1920)

# (key, label, bundle, backend, precision, frame graph, LR size)
ROWS = [
    ("ov_u8s8", "default, OpenVINO INT8 U8S8", "default", "openvino", "int8_u8s8", "off", HD),
    ("ov_int8", "default, OpenVINO INT8 symmetric", "default", "openvino", "int8", "off", HD),
    ("ov_bf16", "default, OpenVINO bf16", "default", "openvino", "bf16", "off", HD),
    ("ov_fp32", "default, OpenVINO FP32 (f32)", "default", "openvino", "fp32", "off", HD),
    ("ort_fp32", "default, ONNX Runtime FP32", "default", "ort-cpu", "fp32", "off", HD),
    ("ort_u8s8", "default, ONNX Runtime INT8 U8S8", "default", "ort-cpu", "int8_u8s8", "off", HD),
    ("ov_u8s8_fg", "default, OpenVINO INT8 U8S8, whole-frame graph", "default", "openvino", "int8_u8s8", "on", HD),
    ("ort_fp32_fg", "default, ONNX Runtime FP32, whole-frame graph", "default", "ort-cpu", "fp32", "on", HD),
    ("fast_ov_u8s8", "fast, OpenVINO INT8 U8S8 (4K out)", "fast", "openvino", "int8_u8s8", "off", UHD),
    ("fast_ort_fp32", "fast, ONNX Runtime FP32 (4K out)", "fast", "ort-cpu", "fp32", "off", UHD),
]
LAYOUTS = ((1, 2), (2, 1))  # (SR workers, engine threads each)


def fsrcnn_round(frames: int, size=HD) -> Dict[str, float]:
    """dnn_superres upsample() on the same test frames: its end-to-end FPS (one thread does all)."""
    import cv2

    from kdedge.runtime.sources import open_source

    cv2.setNumThreads(2)
    sr = cv2.dnn_superres.DnnSuperResImpl_create()
    sr.readModel(str(FSRCNN))
    sr.setModel("fsrcnn", 2)
    src = open_source("test://?size=%dx%d&fps=0" % (size[1], size[0]))
    sr.upsample(src.frame(0))
    t0 = time.perf_counter()
    for i in range(frames):
        sr.upsample(src.frame(i))
    return {"e2e_fps": frames / (time.perf_counter() - t0)}


def kdedge_round(row, frames: int) -> Dict[str, Any]:
    from kdedge.runtime.bench import bench_e2e, bench_model
    from kdedge.runtime.bundle import load_bundle

    _, _, name, backend, prec, fg, size = row
    bundle = load_bundle(name)
    model = bench_model(bundle, backend, prec, size, runs=max(10, frames // 3), warmup=3, threads=2, frame_graph=fg)
    out = {"label": model["label"], "model_fps": 1000.0 / model["ms"]["median"], "layouts": {}}
    for workers, threads in LAYOUTS:
        e = bench_e2e(bundle, backend, prec, size, runs=frames, warmup=10, threads=threads, workers=workers,
                      frame_graph=fg)
        assert e["accounted"], e
        out["layouts"]["%dx%d" % (workers, threads)] = e["fps"]
    out["e2e_fps"] = max(out["layouts"].values())
    out["e2e_over_model"] = out["e2e_fps"] / out["model_fps"]
    return out


def camera_stats(frames: int) -> Dict[str, Any]:
    """`python -m kdedge.camera --model default --backend openvino` itself, its stats JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        cmd = [sys.executable, "-m", "kdedge.camera", "--model", "default", "--backend", "openvino",
               "--input", "test://?size=960x540&fps=0", "--output", "null://", "--frames", str(frames),
               "--quiet", "--stats-json", str(stats)]
        subprocess.run(cmd, check=True, capture_output=True)
        s = json.loads(stats.read_text())
    return {"command": "python " + " ".join(cmd[1:-2]), "fps": s["fps"], "backend": s["backend"], "precision": s["precision"],
            "latency_ms_p50": s["latency_ms"]["p50"], "frames": s["frames_processed"]}


def median_ratio(rounds: List[Dict[str, Any]], a: str, b: str, field: str = "e2e_fps") -> float:
    return float(np.median([r[a][field] / r[b][field] for r in rounds]))


def summarize(rounds: List[Dict[str, Any]]) -> Dict[str, Any]:
    keys = [r[0] for r in ROWS]
    table = {}
    for key in keys + ["fsrcnn"]:
        vals = [r[key] for r in rounds]
        entry = {"e2e_fps": float(np.median([v["e2e_fps"] for v in vals])),
                 "e2e_min": float(np.min([v["e2e_fps"] for v in vals])),
                 "e2e_max": float(np.max([v["e2e_fps"] for v in vals]))}
        if key != "fsrcnn":
            entry.update({"label": vals[0]["label"], "model_fps": float(np.median([v["model_fps"] for v in vals])),
                          "e2e_over_model": float(np.median([v["e2e_over_model"] for v in vals])),
                          "layouts": {k: float(np.median([v["layouts"][k] for v in vals])) for k in vals[0]["layouts"]},
                          "vs_fsrcnn": median_ratio(rounds, key, "fsrcnn"),
                          "vs_ort_fp32": median_ratio(rounds, key, "ort_fp32")})
        table[key] = entry
    return table


def report(result: Dict[str, Any]) -> str:
    t = result["table"]
    lines = ["# OpenVINO vs ONNX Runtime vs OpenCV FSRCNN on this CPU (one interleaved run)", "",
             "Command: `%s` (%d rounds, %d frames per pipeline run, load average before %s, after %s)."
             % (result["command"], result["rounds"], result["frames"], result["load_before"], result["load_after"]),
             "Machine: %s, %s cores; openvino %s, onnxruntime %s, opencv %s." % (
                 result["machine"].get("cpu"), result["machine"].get("cpus"), result["versions"].get("openvino"),
                 result["versions"].get("onnxruntime"), result["versions"].get("opencv")),
             "", "End to end = the camera pipeline (BGR frames in, BGR SR frames out, colour work included), "
             "best of 1 worker x 2 threads and 2 workers x 1 thread; model-only = the backend alone, 2 threads "
             "(with the whole-frame graph its colour work is inside the model). Ratios are per round, then the median.", "",
             "| row | model-only FPS | end to end FPS (min-max) | 1x2 / 2x1 | e2e / model | vs FSRCNN | vs ORT FP32 |",
             "|---|---|---|---|---|---|---|"]
    for key, label, *_ in ROWS:
        r = t[key]
        lines.append("| %s | %.1f | **%.1f** (%.1f-%.1f) | %s | %.0f%% | %.1fx | %.2fx |" % (
            label, r["model_fps"], r["e2e_fps"], r["e2e_min"], r["e2e_max"],
            " / ".join("%.1f" % v for v in r["layouts"].values()), 100 * r["e2e_over_model"],
            r["vs_fsrcnn"], r["vs_ort_fp32"]))
    f = t["fsrcnn"]
    lines.append("| OpenCV FSRCNN, dnn_superres upsample() | – | %.1f (%.1f-%.1f) | – | – | 1.0x | – |" % (
        f["e2e_fps"], f["e2e_min"], f["e2e_max"]))
    cam = result.get("camera")
    if cam:
        lines += ["", "`%s`: %.1f FPS (%s, precision %s: what `auto` picked), latency p50 %.0f ms over %d frames." % (
            cam["command"], cam["fps"], cam["backend"], cam["precision"], cam["latency_ms_p50"], cam["frames"])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=90, help="frames per end-to-end run (after 10 warm-up)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 30 frames, results not written")
    parser.add_argument("--camera-only", action="store_true",
                        help="re-measure only the `python -m kdedge.camera` line of the saved results")
    args = parser.parse_args(argv)
    if args.camera_only:
        result = json.loads((RESULTS / "openvino_cpu.json").read_text())
        result["camera"] = camera_stats(max(200, result["frames"] * 2))
        result["camera"]["measured"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_json(RESULTS / "openvino_cpu.json", result)
        (RESULTS / "openvino_cpu.md").write_text(report(result))
        print(report(result))
        return 0
    if args.quick:
        args.rounds, args.frames = 2, 30
    import cv2
    import onnxruntime
    import openvino

    if not hasattr(cv2, "dnn_superres") or not FSRCNN.is_file():
        print("needs opencv-contrib-python-headless and %s" % FSRCNN, file=sys.stderr)
        return 1
    load_before = load_avg()
    labels = dict([("fsrcnn", "OpenCV FSRCNN")] + [(row[0], row[1]) for row in ROWS])

    def progress(r: int, key: str, res: Dict[str, Any]) -> None:
        model = "model %6.1f  " % res["model_fps"] if "model_fps" in res else ""
        print("round %d %-52s %se2e %6.1f FPS" % (r + 1, labels[key], model, res["e2e_fps"]), file=sys.stderr, flush=True)

    jobs = [("fsrcnn", lambda: fsrcnn_round(max(8, args.frames // 10)))]
    jobs += [(row[0], lambda row=row: kdedge_round(row, args.frames)) for row in ROWS]
    per_job = interleaved_rounds(jobs, args.rounds, after_job=progress)
    rounds = [{key: values[r] for key, values in per_job.items()} for r in range(args.rounds)]
    result = {"command": "python benchmarks/openvino_cpu.py" + (" " + " ".join(argv or sys.argv[1:])).rstrip(),
              "rounds": args.rounds, "frames": args.frames, "load_before": load_before,
              "machine": machine(), "versions": {"openvino": openvino.__version__, "onnxruntime": onnxruntime.__version__,
                                                 "opencv": cv2.__version__},
              "table": summarize(rounds), "per_round": rounds}
    result["camera"] = camera_stats(max(200, args.frames * 2))
    result["load_after"] = load_avg()
    text = report(result)
    print(text)
    if not args.quick:
        write_json(RESULTS / "openvino_cpu.json", result)
        (RESULTS / "openvino_cpu.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
