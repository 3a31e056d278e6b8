"""Speed table: model-only and end-to-end FPS of every row at 270x480 and 540x960 LR luma, in one run.

Runtimes: ONNX Runtime CPU with 2 intra-op threads for every ONNX row (kdedge in each precision, the
teachers' exports) and OpenVINO (2 threads) for the bundle rows marked so; OpenCV dnn (2 threads) for
FSRCNN, its own runtime; OpenCV `resize` for bicubic.
- model-only: the network's forward on a float32 NCHW tensor already in memory (1 channel for Y
  models, 3 for the RGB teachers at the same spatial size).
- end-to-end: BGR uint8 LR frame in, BGR uint8 SR frame out, one frame after the other in one thread:
  `kdedge.runtime.pipeline.SRProcessor.process` (the camera pipeline's own colour split, model call and
  merge; Y models get bicubic chroma, the RGB teachers go through the same code in RGB);
  FSRCNN: dnn_superres `upsample()`; bicubic: `cv2.resize` INTER_CUBIC.
- pipeline (bundle rows only): the threaded camera pipeline of `kdedge.runtime.bench.bench_e2e`
  (capture + colour split on one thread, SR, merge + null sink on another), the FPS a camera user sees.
Method: every (row, size, mode) is warmed up, then timed in `reps` rounds; each round runs a block of
frames sized to last about `block_s` seconds, and the rounds of all rows are interleaved (round 1 of
every row, then round 2, ...) so that load changes on a shared machine spread over all rows alike.
Reported: median FPS over rounds and its spread (min, max, IQR), plus achieved GMAC/s.

    python benchmarks/speed.py [--quick] [--reps 7] [--rows kdedge-int8,fsrcnn]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from common import SCALE, THREADS, Row, discover_rows, limit_threads, load_avg, machine, read_json, results_dir, write_json
from kdedge.common import sha256_file
from kdedge.runtime.bench import calls_per_block, interleaved_rounds, rate, summarize_rounds

SIZES: Tuple[Tuple[int, int], ...] = ((270, 480), (540, 960))


def open_backend(path: str, threads: int = THREADS, backend: str = "ort-cpu", precision: str = "fp32"):
    """What kdedge's runtime runs: its ONNX Runtime backend (`open_model`: all graph optimisations,
    `threads` intra-op threads, one inter-op thread) or its OpenVINO backend, activated."""
    from kdedge.runtime.backends import open_model

    return open_model(path, backend, threads=threads, precision=precision).activate()


def _backend_of(row: Row) -> str:
    return "openvino" if row.runtime == "openvino" else "ort-cpu"


def _io_names(path: str) -> Tuple[str, str, int]:
    """(input name, output name, input channels) of an ONNX file, from its graph."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    return graph.input[0].name, graph.output[0].name, (dims[1].dim_value if len(dims) == 4 else 0) or 1


def _frame(h: int, w: int) -> np.ndarray:
    """The runtime's test-pattern frame (moving shapes and text on gradients), as `kdedge bench` uses."""
    from kdedge.runtime.sources import open_source

    return open_source("test://?size=%dx%d&fps=0" % (w, h)).frame(7)


_BACKENDS: Dict[str, object] = {}


def make_runners(row: Row, onnx_file: Optional[str], h: int, w: int) -> Dict[str, Callable[[], object]]:
    """{"model": fn, "e2e": fn}: zero-argument callables processing one frame of LR size h x w.
    One ORT session per file serves every size and mode (one memory arena per model, as in the camera)."""
    import cv2

    frame = _frame(h, w)
    if row.kind == "bicubic":
        fn = lambda: cv2.resize(frame, (w * SCALE, h * SCALE), interpolation=cv2.INTER_CUBIC)  # noqa: E731
        return {"model": fn, "e2e": fn}
    if row.kind == "opencv":
        from upscalers import OpenCvFsrcnn, dnn_superres

        net = OpenCvFsrcnn(row.path).net
        blob = (cv2.cvtColor(frame, cv2.COLOR_BGR2YCrCb)[..., 0].astype(np.float32) / 255.0)[None, None]

        def model():
            net.setInput(blob)
            return net.forward()

        sr = dnn_superres(row.path)
        return {"model": model, "e2e": lambda: sr.upsample(frame)}
    from kdedge.runtime.bundle import ModelSpec
    from kdedge.runtime.processor import SRProcessor

    key = (onnx_file, _backend_of(row), row.precision)
    if key not in _BACKENDS:
        _BACKENDS[key] = open_backend(onnx_file, backend=key[1], precision=row.precision or "fp32")
    backend = _BACKENDS[key]
    in_name, out_name, channels = _io_names(onnx_file)
    # non-bundle rows (teachers, the naive INT8 file) go through exactly the code the camera runs
    spec = ModelSpec(scale=SCALE, color="y" if channels == 1 else "rgb", input_name=in_name, output_name=out_name)
    proc = SRProcessor(spec, backend)
    chw, _, _ = proc.prepare(frame)
    feed = {in_name: np.ascontiguousarray(chw[None])}
    return {"model": lambda: backend.infer(feed, check_inputs=False), "e2e": lambda: proc.process(frame)}


def pipeline_runner(bundle_path: str, precision: str, h: int, w: int, frames: int,
                    workers: int = 1, backend: str = "ort-cpu") -> Callable[[], float]:
    """One round of the threaded camera pipeline (capture thread -> SR -> writer thread, test:// source,
    null:// sink) from `kdedge.runtime.bench`; returns its FPS over `frames` frames after 2 warm-up frames.
    With `workers` SR threads, the THREADS cores are shared out: one ORT thread each for 2 workers."""
    from kdedge.runtime.bench import bench_e2e
    from kdedge.runtime.bundle import load_bundle

    bundle = load_bundle(bundle_path)
    threads = max(1, THREADS // workers)
    return lambda: bench_e2e(bundle, backend, precision, (h, w), frames, 2, threads, workers)["fps"]


def _bundle_precs(bundle: str):
    from kdedge.runtime.bundle import load_bundle

    try:
        return set(load_bundle(bundle).precisions)
    except Exception:
        return set()


def run(rows: Optional[List[Row]] = None, quick: bool = False, reps: int = 7, block_s: float = 0.6,
        warmup: int = 2, only: Optional[List[str]] = None, sizes=SIZES) -> Dict:
    import upscalers

    limit_threads()
    rows = rows if rows is not None else discover_rows()
    if quick:
        reps, block_s, sizes = 2, 0.15, sizes[:1]
    quality = read_json(results_dir(quick) / "quality.json", {}) or {}
    macs = {r["key"]: (r.get("complexity") or {}).get("macs_per_lr_pixel") for r in quality.get("rows", [])}
    entries: Dict[str, Dict] = {}
    jobs = []  # ((row key, size, mode), measure() -> FPS of one round)
    load_before = load_avg()
    for row in rows:
        if only and row.key not in only:
            continue
        entry = row.to_dict()
        entry["results"] = {}
        entries[row.key] = entry
        if not row.ok:
            continue
        try:
            onnx_file = upscalers.onnx_path(row)
            if macs.get(row.key) is None and row.kind != "bicubic":
                from macs import complexity_of

                macs[row.key] = complexity_of(row, onnx_file)["macs_per_lr_pixel"]
            entry["macs_per_lr_pixel"] = macs.get(row.key)
            for h, w in sizes:
                runners = make_runners(row, onnx_file, h, w)
                for mode, fn in runners.items():
                    for _ in range(warmup):
                        fn()
                    n, first = calls_per_block(fn, block_s, max_calls=200)
                    jobs.append(((row.key, (h, w), mode), rate(fn, n)))
                    print("speed: %-18s %4dx%-4d %-5s ready (%.1f ms/frame, %d frames/block)"
                          % (row.key, h, w, mode, first * 1e3, n), flush=True)
                    if mode == "e2e" and row.bundle and (row.precision in _bundle_precs(row.bundle) or row.precision == "bf16"):
                        # the real threaded pipeline, from kdedge.runtime.bench (its own frame count)
                        frames = max(4, min(60, 2 * n))
                        be = _backend_of(row)
                        jobs.append(((row.key, (h, w), "pipeline"), pipeline_runner(row.bundle, row.precision, h, w, frames,
                                                                                    backend=be)))
                        jobs.append(((row.key, (h, w), "pipeline2"), pipeline_runner(row.bundle, row.precision, h, w, frames,
                                                                                     workers=2, backend=be)))
        except Exception as exc:  # a row that cannot run is reported, not fatal
            entry["status"] = "error: %s: %s" % (type(exc).__name__, exc)
            print("speed: %-18s %s" % (row.key, entry["status"]), flush=True)
    times = interleaved_rounds(jobs, reps, after_round=lambda r: print("speed: round %d/%d done" % (r + 1, reps), flush=True))
    for (key, size, mode), fps in times.items():
        s = summarize_rounds(fps)
        m = entries[key].get("macs_per_lr_pixel")
        if m and mode == "model" and entries[key].get("kind") != "bicubic":
            s["gmac_per_s"] = s["median"] * m * size[0] * size[1] / 1e9
        entries[key]["results"]["%dx%d" % size] = entries[key]["results"].get("%dx%d" % size, {})
        entries[key]["results"]["%dx%d" % size][mode] = s
    for entry in entries.values():  # which file each row timed: the report flags rows whose file changed since
        if entry.get("path") and os.path.isfile(entry["path"]):
            entry["sha256"] = sha256_file(entry["path"])
    out = {"quick": quick, "reps": reps, "block_seconds": block_s, "warmup": warmup, "threads": THREADS,
           "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "sizes": ["%dx%d" % s for s in sizes], "rows": list(entries.values()),
           "loadavg_before": load_before, "loadavg_after": load_avg(), "machine": machine()}
    for b in _BACKENDS.values():
        b.deactivate()
    _BACKENDS.clear()
    if not only:
        write_json(results_dir(quick) / "speed.json", out)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 short rounds at 270x480 only (development)")
    p.add_argument("--reps", type=int, default=7, help="timed rounds per (row, size, mode)")
    p.add_argument("--rows", default="", help="comma-separated row keys (default: all); results not saved")
    args = p.parse_args(argv)
    res = run(quick=args.quick, reps=args.reps, only=[r for r in args.rows.split(",") if r] or None)
    for e in res["rows"]:
        for size, modes in e["results"].items():
            print("%-18s %s  %s" % (e["key"], size, "  ".join(
                "%s %.1f fps" % (m, modes[m]["median"]) for m in ("model", "e2e", "pipeline") if m in modes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
