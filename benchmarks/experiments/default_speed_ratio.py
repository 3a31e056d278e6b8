"""The shipped default against the default it replaced: model-only speed side by side, against their MAC ratio.

    python benchmarks/experiments/default_speed_ratio.py --previous 97a41db     # the commit that still shipped the old one
    python benchmarks/experiments/default_speed_ratio.py --previous HEAD --current runs/qat16x5/CANDIDATE/bundle \
        --out benchmarks/experiments/results/centred_speed    # a candidate bundle against the shipped default

The previous bundle is read from git (`git archive <commit> kdedge/assets/default_x2`) into a temporary
folder; the current one is kdedge/assets/default_x2. For each engine and precision the runtime offers
(ONNX Runtime FP32 / INT8 U8S8, OpenVINO INT8 U8S8 / INT8 symmetric / bf16), both bundles run the
backend alone on one 540x960 LR frame with 2 threads (`kdedge.runtime.bench.bench_model`), in
interleaved rounds (every row of both bundles once per round, the order of the pair alternating), and
the slowdown previous FPS / current FPS is taken within each round, then the median. The issue's bar: a
slowdown no larger than the MAC ratio. Needs the benchmark venv (openvino). Writes
experiments/results/default_speed_ratio.{json,md}.
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
from common import load_avg  # noqa: E402

ROWS = [("ort-cpu", "fp32"), ("ort-cpu", "int8_u8s8"), ("openvino", "int8_u8s8"), ("openvino", "int8"), ("openvino", "bf16")]
SIZE = (540, 960)


def _onnx_macs(bundle_dir: Path) -> float:
    from kdedge.export.macs import onnx_complexity

    return onnx_complexity(str(bundle_dir / "model.onnx"))["macs_per_lr_pixel"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--previous", required=True, help="git commit whose kdedge/assets/default_x2 is the previous default")
    ap.add_argument("--current", default=str(REPO / "kdedge" / "assets" / "default_x2"),
                    help="bundle folder measured against it (default: the shipped kdedge/assets/default_x2)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=30, help="timed frames per measurement")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "default_speed_ratio"))
    args = ap.parse_args(argv)

    from kdedge.runtime.backends import available_backends
    from kdedge.runtime.bench import bench_model
    from kdedge.runtime.bundle import load_bundle

    load0 = load_avg()
    with tempfile.TemporaryDirectory() as tmp:
        tar = subprocess.run(["git", "archive", args.previous, "kdedge/assets/default_x2"], cwd=str(REPO),
                             check=True, capture_output=True).stdout
        tarfile.open(fileobj=io.BytesIO(tar)).extractall(tmp)
        dirs = {"previous": Path(tmp) / "kdedge" / "assets" / "default_x2", "current": Path(args.current)}
        bundles = {k: load_bundle(str(d)) for k, d in dirs.items()}
        macs = {k: _onnx_macs(d) for k, d in dirs.items()}
        engines = set(available_backends())
        rows = [r for r in ROWS if r[0] in engines]
        fps = {(k, r): [] for k in bundles for r in rows}
        for i in range(args.rounds):
            for r in rows:
                for k in (("previous", "current") if i % 2 == 0 else ("current", "previous")):
                    m = bench_model(bundles[k], r[0], r[1], SIZE, runs=args.runs, warmup=3, threads=2)
                    fps[(k, r)].append(1000.0 / m["ms"]["median"])
            print("round %d/%d done" % (i + 1, args.rounds), flush=True)
    table = []
    for r in rows:
        slow = [p / c for p, c in zip(fps[("previous", r)], fps[("current", r)])]
        table.append({"backend": r[0], "precision": r[1], "previous_fps": float(np.median(fps[("previous", r)])),
                      "current_fps": float(np.median(fps[("current", r)])), "slowdown": float(np.median(slow)),
                      "slowdown_min": float(np.min(slow)), "slowdown_max": float(np.max(slow))})
    mac_ratio = macs["current"] / macs["previous"]
    result = {"command": "python benchmarks/experiments/default_speed_ratio.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_before": load0, "load_after": load_avg(),
              "size": SIZE, "macs_per_lr_pixel": macs, "mac_ratio": mac_ratio, "rows": table}
    Path(args.out + ".json").write_text(json.dumps(result, indent=1) + "\n")
    title = ("The default student against the one it replaced" if Path(args.current).resolve() == (REPO / "kdedge" / "assets" / "default_x2").resolve()
             else "%s against the default shipped at %s" % (args.current, args.previous))
    lines = ["# %s: model-only speed at 540x960 LR" % title, "",
             "Command: `%s` (%s; load average before %s, after %s). 2 threads, %d rounds, interleaved; slowdown ="
             " previous FPS / current FPS within a round, median (min-max)." % (
                 result["command"], result["date"], load0, result["load_after"], args.rounds), "",
             "MACs per LR pixel: previous %.0f, current %.0f: ratio **%.3f** (the bar)." % (macs["previous"], macs["current"], mac_ratio), "",
             "| engine | precision | previous FPS | current FPS | slowdown | within the MAC ratio |", "|---|---|---|---|---|---|"]
    for t in table:
        lines.append("| %s | %s | %.1f | %.1f | %.3f (%.3f-%.3f) | %s |" % (
            t["backend"], t["precision"], t["previous_fps"], t["current_fps"], t["slowdown"], t["slowdown_min"],
            t["slowdown_max"], "yes" if t["slowdown"] <= mac_ratio else "no"))
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
