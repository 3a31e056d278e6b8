"""Latency and FPS of a bundle per backend, precision and input size, model-only and end to end.

Model-only times the backend on a (1, C, H, W) input; end-to-end runs the real pipeline (colour
split, SR, colour merge, threads) from an unpaced test pattern into a null sink. Bicubic is timed
beside them. Sizes are LR luma H x W (default 270x480 and 540x960). Median and spread (p10/p90) of
--runs repeats after --warmup runs; --rounds alternates model-only and end-to-end runs.

examples:
  kdedge bench kdedge/assets/default_x2
  kdedge bench bundle/ --backend ort-cpu --precision int8_u8s8 --size 270x480 --json > bench.json
  kdedge bench bundle/ --rounds 3 --threads 2 --json --out results/bench.json
  kdedge bench default --backend openvino --precision int8 --size 540x960 --workers 2 --frame-graph both
"""
from __future__ import annotations

import argparse
import json
import re
import sys

from kdedge.camera import add_engine_arguments, check_engine_arguments
from kdedge.cli._common import add_config_argument
from kdedge.errors import KdedgeError, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", nargs="?", default=None, help="bundle folder, or a shipped bundle's name (default, fast)")
    add_engine_arguments(parser, bench=True)
    parser.add_argument("--size", action="append", default=None, metavar="HxW",
                        help="LR luma size, repeatable (default: 270x480 and 540x960)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--rounds", type=int, default=1, help="alternate model-only and end-to-end this many times")
    parser.add_argument("--no-e2e", action="store_true", help="model-only timings")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    add_config_argument(parser)


def _sizes(values):
    sizes = []
    for v in values:
        m = re.match(r"^(\d+)[xX](\d+)$", v)
        if not m or not (0 < int(m.group(1)) <= 8192 and 0 < int(m.group(2)) <= 8192):
            raise UsageError("--size must be HxW with both between 1 and 8192 (e.g. 270x480), got %r" % v)
        sizes.append((int(m.group(1)), int(m.group(2))))
    return sizes


def run(args: argparse.Namespace) -> int:
    from kdedge.runtime.bench import DEFAULT_SIZES, bench, format_report
    from kdedge.runtime.bundle import atomic_write_bytes

    if not args.bundle:
        raise KdedgeError("no bundle given", fix="kdedge bench BUNDLE_DIR")
    if args.runs < 2 or args.warmup < 0 or args.rounds < 1:
        raise UsageError("need --runs >= 2, --warmup >= 0, --rounds >= 1")
    check_engine_arguments(args)
    sizes = _sizes(args.size) if args.size else None
    if args.out:  # checked first: the measurement must not be lost at the end
        from kdedge.paths import check_writable_file

        check_writable_file(args.out, "--out file")
    log = None if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    result = bench(args.bundle, backends=args.backend, precisions=args.precision,
                   sizes=sizes or DEFAULT_SIZES, runs=args.runs, warmup=args.warmup,
                   rounds=args.rounds, threads=args.threads, e2e=not args.no_e2e, log=log,
                   workers=args.workers,
                   frame_graphs=("off", "on") if args.frame_graph == "both" else (args.frame_graph,))
    text = json.dumps(result, indent=2)
    print(text if args.json else format_report(result))  # first: a failed --out write loses nothing
    if args.out:
        from pathlib import Path

        atomic_write_bytes(Path(args.out), (text + "\n").encode("utf-8"))
    return 0
