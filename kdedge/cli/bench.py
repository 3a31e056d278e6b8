"""Latency and FPS of a bundle per backend, precision and input size, model-only and end to end.

Model-only times the backend on a (1, C, H, W) input; end-to-end runs the real pipeline (colour
split, SR, colour merge, threads) from an unpaced test pattern into a null sink. Bicubic is timed
beside them. --size is the LR frame's width x height, as video sizes are written (default 480x270
and 960x540); the JSON rows give it as size_hw, [height, width]. Median and spread (p10/p90) of
--runs repeats after --warmup runs; --rounds alternates model-only and end-to-end runs.

examples:
  kdedge bench kdedge/assets/default_x2
  kdedge bench bundle/ --backend ort-cpu --precision int8_u8s8 --size 480x270 --json > bench.json
  kdedge bench bundle/ --rounds 3 --threads 2 --json --out results/bench.json
  kdedge bench default --backend openvino --precision int8 --size 960x540 --workers 2 --frame-graph both
"""
from __future__ import annotations

import argparse
import json
import sys

from kdedge.camera import add_engine_arguments, check_engine_arguments
from kdedge.cli._common import add_config_argument
from kdedge.errors import KdedgeError, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", nargs="?", default=None, help="bundle folder, or a shipped bundle's name (default, fast)")
    add_engine_arguments(parser, bench=True)
    parser.add_argument("--size", action="append", default=None, metavar="WxH",
                        help="LR frame size, width first, repeatable (default: 480x270 and 960x540)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--rounds", type=int, default=1, help="alternate model-only and end-to-end this many times")
    parser.add_argument("--no-e2e", action="store_true", help="model-only timings")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    add_config_argument(parser)


def _sizes(values):
    """--size WxH values as the (H, W) pairs `bench()` takes (array order, as its JSON's size_hw)."""
    from kdedge.common import parse_size

    sizes = []
    for v in values:
        try:
            w, h = parse_size(v, "--size", max_side=8192)
        except KdedgeError as exc:
            raise UsageError(exc.message) from exc  # a bad option value: exit status 2
        sizes.append((h, w))
    return sizes


def run(args: argparse.Namespace) -> int:
    from kdedge.runtime.bench import DEFAULT_SIZES, bench, format_report
    from kdedge.common import atomic_write_bytes

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
