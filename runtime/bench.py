"""Latency and throughput of a bundle: per backend, precision and input size, model-only and end to end.

Model-only: the backend's `infer` on a (1, C, H, W) input made from the test pattern, after warm-up,
`runs` times; median and spread (p10/p90) in ms. End to end: the real pipeline (capture thread with
colour split, SR, writer thread with colour merge) from an unpaced `test://` source of H x W frames
into `null://`; FPS from the writer's timestamps after the warm-up frames. Bicubic (OpenCV, on the
BGR frame and on the Y plane) is timed beside them as the floor every SR model is compared to.
The ratio e2e/model says how much the pipeline costs on top of the model (acceptance: >= 0.9 at
270x480 on a CPU); with rounds > 1 it is the median of the per-round ratios. `rounds` > 1 alternates model-only and end-to-end runs and keeps the medians, which
damps the noise of a shared machine.
"""
from __future__ import annotations

import platform
import time
from typing import Any, Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np

from kdedge.runtime import colour
from kdedge.runtime.backends import CPU_BACKENDS, available_backends, create_backend, frame_graph_problem
from kdedge.runtime.bundle import FRAME_INPUT, load_bundle
from kdedge.runtime.pipeline import Pipeline, PipelineOptions
from kdedge.runtime.processor import SRProcessor, create_backends
from kdedge.runtime.sources import open_source

DEFAULT_SIZES = ((270, 480), (540, 960))  # (H, W) of the LR luma


def _spread(times_s: Sequence[float]) -> Dict[str, float]:
    ms = np.asarray(times_s) * 1000.0
    return {"median": float(np.median(ms)), "p10": float(np.percentile(ms, 10)),
            "p90": float(np.percentile(ms, 90)), "min": float(ms.min()), "n": int(ms.size)}


def _frame(h: int, w: int) -> np.ndarray:
    return open_source("test://?size=%dx%d&fps=0" % (w, h)).frame(7)


def bench_model(bundle, backend: str, precision: str, size: Tuple[int, int], runs: int, warmup: int,
                threads: Optional[int], frame_graph: str = "off") -> Dict[str, Any]:
    """The backend alone on one prepared input (with the whole-frame graph: the frame graph, colour work included)."""
    h, w = size
    be = create_backend(bundle, backend, precision, threads=threads, frame_graph=frame_graph)
    with be:
        proc = SRProcessor(bundle.spec, be)
        chw, _, _ = proc.prepare(_frame(h, w))
        feed = {FRAME_INPUT: chw} if proc.frame_graph else {bundle.input_name: np.ascontiguousarray(chw[None])}
        for _ in range(warmup):
            be.infer(feed, check_inputs=False)
        times = []
        for _ in range(runs):
            be.infer(feed, check_inputs=False)
            times.append(be.inference_time)
        label = be.label
    return {"label": label, "ms": _spread(times)}


def bench_e2e(bundle, backend: str, precision: str, size: Tuple[int, int], runs: int, warmup: int,
              threads: Optional[int], workers: int = 1, frame_graph: str = "off") -> Dict[str, Any]:
    h, w = size
    bes = create_backends(bundle, backend, precision, threads, workers, frame_graph)
    uri = "test://?size=%dx%d&fps=0&frames=%d" % (w, h, warmup + runs)
    p = Pipeline(bundle, bes, uri, "null://", PipelineOptions(quiet=True))
    s = p.run()
    t = list(p.stats.write_times)[warmup:]
    fps = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else 0.0
    return {"fps": fps, "latency_ms": s["latency_ms"], "frames": s["frames_processed"], "accounted": s["accounted"]}


def bench_bicubic(size: Tuple[int, int], scale: int, runs: int) -> Dict[str, Any]:
    import cv2

    h, w = size
    frame = _frame(h, w)
    y = colour.bgr_to_ycbcr(frame)[..., 0].copy()
    out = {}
    for name, fn in (("bgr", lambda: colour.bicubic_bgr(frame, scale)),
                     ("y", lambda: cv2.resize(y, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC))):
        fn()
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[name] = _spread(times)
    return out


def _runnable(bundle, backend: str) -> List[str]:
    precs = sorted(bundle.precisions)
    if backend == "tensorrt":
        precs = [p for p in precs if p != "int8_u8s8"]
    if backend == "openvino" and "fp32" in precs:
        from kdedge.runtime.backends.openvino import cpu_has_bf16

        if cpu_has_bf16():
            precs.append("bf16")
    return precs


def _workers(backend: str, workers: int) -> int:
    return workers if backend in CPU_BACKENDS else 1


def _versions() -> Dict[str, str]:
    import cv2

    found = {"opencv": cv2.__version__}
    for mod in ("onnxruntime", "openvino"):
        try:
            found[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return found


def bench(bundle_path, backends: Optional[Sequence[str]] = None, precisions: Optional[Sequence[str]] = None,
          sizes: Sequence[Tuple[int, int]] = DEFAULT_SIZES, runs: int = 30, warmup: int = 5, rounds: int = 1,
          threads: Optional[int] = None, e2e: bool = True,
          log: Optional[Callable[[str], None]] = None, workers: int = 1,
          frame_graphs: Sequence[str] = ("off",)) -> Dict[str, Any]:
    """Benchmark a bundle; returns {"bundle", "machine", "rows": [...], "bicubic": [...]}. `workers`
    SR threads run the end-to-end pipeline on the CPU backends (1 elsewhere). `frame_graphs`: "off"
    (Python colour path), "on" (the whole-frame graph, where the bundle has one), or both."""
    bundle = load_bundle(bundle_path)
    backends = list(backends or [b for b in available_backends() if b != "ort-tensorrt"])
    rows = []
    for backend in backends:
        for prec in (precisions or _runnable(bundle, backend)):
            for fg in frame_graphs:
                if fg == "on" and frame_graph_problem(bundle, backend, prec) is not None:
                    continue  # no frame graph for this precision or backend
                for size in sizes:
                    rows.append(_bench_row(bundle, backend, prec, fg, size, runs, warmup, rounds, threads, e2e, workers))
                    if log:
                        log(format_row(rows[-1]))
    bic = [{"size_hw": list(s), "ms": bench_bicubic(s, bundle.scale, runs)} for s in sizes]
    return {
        "bundle": str(bundle.path), "name": bundle.name, "scale": bundle.scale, "color": bundle.color,
        "runs": runs, "warmup": warmup, "rounds": rounds, "threads": threads, "workers": workers,
        "machine": dict({"platform": platform.platform(), "python": platform.python_version()}, **_versions()),
        "rows": rows, "bicubic": bic,
    }


def _bench_row(bundle, backend: str, prec: str, fg: str, size: Tuple[int, int], runs: int, warmup: int,
               rounds: int, threads: Optional[int], e2e: bool, workers: int) -> Dict[str, Any]:
    models, e2es, label, lat = [], [], "", None
    for _ in range(max(1, rounds)):
        m = bench_model(bundle, backend, prec, size, runs, warmup, threads, fg)
        models.append(m["ms"])
        label = m["label"]
        if e2e:
            e = bench_e2e(bundle, backend, prec, size, runs, warmup, threads, _workers(backend, workers), fg)
            e2es.append(e["fps"])
            lat = e["latency_ms"]
    model_ms = float(np.median([m["median"] for m in models]))
    row = {
        "backend": backend, "label": label, "precision": prec, "frame_graph": fg == "on", "size_hw": list(size),
        "model_ms": models[0] if len(models) == 1 else {"median": model_ms, "rounds": models},
        "model_fps": 1000.0 / model_ms,
        "e2e_fps": float(np.median(e2es)) if e2es else None,
        "e2e_fps_rounds": e2es,
        "e2e_latency_ms": lat,
        "e2e_workers": _workers(backend, workers),
    }
    # Each round pairs a model-only and an end-to-end run taken back to back, so the ratio of a pair is
    # less exposed to load drift on a shared machine than a ratio of medians.
    ratios = [e * m["median"] / 1000.0 for e, m in zip(e2es, models)]
    row["e2e_over_model_rounds"] = ratios
    row["e2e_over_model"] = float(np.median(ratios)) if ratios else None
    return row


def format_row(row: Dict[str, Any]) -> str:
    h, w = row["size_hw"]  # printed WxH, as --size takes it
    ms = row["model_ms"]["median"]
    e2e = "e2e %6.1f FPS (%3.0f%% of model)" % (row["e2e_fps"], 100 * row["e2e_over_model"]) if row["e2e_fps"] else ""
    return "%-44s %4dx%-4d model %7.2f ms %6.1f FPS   %s" % (row["label"], w, h, ms, row["model_fps"], e2e)


def format_report(result: Dict[str, Any]) -> str:
    lines = ["%s (x%d, %s) on %s" % (result["name"], result["scale"], result["color"], result["machine"]["platform"]),
             "%-44s %-9s %s" % ("backend precision", "LR WxH", "median of %d runs after %d warm-up" % (result["runs"], result["warmup"]))]
    lines += [format_row(r) for r in result["rows"]]
    for b in result["bicubic"]:
        h, w = b["size_hw"]
        lines.append("%-44s %4dx%-4d BGR %6.2f ms, Y plane %6.2f ms" % ("bicubic (OpenCV)", w, h, b["ms"]["bgr"]["median"], b["ms"]["y"]["median"]))
    return "\n".join(lines)


# Interleaved timing rounds: the method of every speed table in benchmarks/. Each measurement is a
# zero-argument callable returning one number (a rate); round r measures every job once, in order,
# before round r + 1 starts, so load changes on a shared machine spread over all jobs alike.

def calls_per_block(fn: Callable[[], object], block_s: float, max_calls: Optional[int] = None) -> Tuple[int, float]:
    """(calls, seconds of one call): how many calls of `fn` make a block of about `block_s` seconds
    (at least 1, at most `max_calls`), from one timed call."""
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    n = max(1, int(round(block_s / max(dt, 1e-6))))
    return (min(n, max_calls) if max_calls else n), dt


def rate(fn: Callable[[], object], calls: int) -> Callable[[], float]:
    """A measurement: runs `fn` `calls` times and returns calls per second."""
    def measure() -> float:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        return calls / (time.perf_counter() - t0)

    return measure


def interleaved_rounds(jobs: Sequence[Tuple[Hashable, Callable[[], Any]]], rounds: int,
                       after_job: Optional[Callable[[int, Hashable, Any], None]] = None,
                       after_round: Optional[Callable[[int], None]] = None) -> Dict[Hashable, List[Any]]:
    """{key: [value of round 1, round 2, ...]} of the (key, measure) jobs, measured round-robin.
    `after_job(round, key, value)` and `after_round(round)` (0-based) are for progress lines."""
    values: Dict[Hashable, List[Any]] = {key: [] for key, _ in jobs}
    for r in range(rounds):
        for key, measure in jobs:
            values[key].append(measure())
            if after_job:
                after_job(r, key, values[key][-1])
        if after_round:
            after_round(r)
    return values


def summarize_rounds(values: Sequence[float]) -> Dict[str, float]:
    """Median, min, max and interquartile range of the per-round values."""
    a = np.asarray(values, dtype=np.float64)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median": float(med), "min": float(a.min()), "max": float(a.max()), "iqr": float(q3 - q1),
            "rounds": int(a.size)}
