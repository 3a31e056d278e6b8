"""Real-time super-resolution of a camera, stream or file with a kdedge bundle (torch-free).

    python -m kdedge.camera [--model BUNDLE] [--input URI] [--output URI] [options]

Frames are captured in their own thread (only the newest is kept on live sources, drops are
counted), super-resolved by TensorRT, OpenVINO or ONNX Runtime, and written by a writer thread. FPS, latency
p50/p95 and drops are printed every few seconds; --stats-json writes them at the end. Ctrl-C or
SIGTERM finish the output file cleanly. Every write is checked (a full disk or a read-only folder
ends the run and says how many frames are safe); the output may not be the input. Exit status: 0
when the input ended or --frames were done, 1 when the source or sink failed (the output written so
far is still finished and playable, unless the disk filled up), 2 for bad arguments, 130 / 143 when
stopped by SIGINT (Ctrl-C) / SIGTERM (the output is finished first).

examples:
  python -m kdedge.camera                                     # default bundle, test pattern, display or null
  python -m kdedge.camera --input csi://0 --output display://0 --overlay
  python -m kdedge.camera --input v4l2:///dev/video0 --output out.mp4 --reconnect
  python -m kdedge.camera --input rtsp://cam:8554/live --input-codec h265 --input-latency 50
  python -m kdedge.camera --model bundle/ --input clip.mp4 --output sr.avi --stats-json stats.json
  python -m kdedge.camera --input test://?size=960x540 --frames 300 --output null:// --backend ort-cpu
  python -m kdedge.camera --model fast --input v4l2:///dev/video0   # the shipped speed-first student
  python -m kdedge.camera --backend openvino --precision int8 --input clip.mp4 --output sr.mp4   # fast INT8 on a CPU
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from kdedge.errors import SIGNAL_EXIT, KdedgeError, UsageError

DEFAULT_BUNDLE = Path(__file__).resolve().parent / "assets" / "default_x2"


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """--model, shared by the camera and `kdedge upscale`; `model_or_default` resolves it."""
    parser.add_argument("--model", metavar="BUNDLE", default=None,
                        help="bundle folder from `kdedge export`, or a shipped bundle's name: default (quality) or fast "
                             "(speed) (default: the shipped %s)" % DEFAULT_BUNDLE.name)


def model_or_default(model: Optional[str]) -> str:
    """The --model value, or the shipped default bundle; KdedgeError when neither is there."""
    if model is None and not DEFAULT_BUNDLE.is_dir():
        raise KdedgeError("no --model given and the default bundle %s is not installed" % DEFAULT_BUNDLE,
                          fix="pass --model BUNDLE (a folder written by `kdedge export`)")
    return model or str(DEFAULT_BUNDLE)


def add_engine_arguments(parser: argparse.ArgumentParser, bench: bool = False) -> None:
    """The flags that choose and size the inference engine, defined once for the camera, `kdedge
    upscale` and `kdedge bench`: --backend, --precision, --threads, --workers, --frame-graph and, for
    runs, --tile. With `bench`, --backend and --precision repeat (default: every one available) and
    --frame-graph also takes `both`. `check_engine_arguments` checks the values."""
    from kdedge.runtime.backends import BACKENDS, PRECISIONS

    if bench:
        parser.add_argument("--backend", action="append", default=None,
                            help="tensorrt, ort-tensorrt, ort-cuda, openvino or ort-cpu; repeat for several (default: all available)")
        parser.add_argument("--precision", action="append", default=None,
                            help="repeatable (default: every precision in the bundle, plus bf16 on OpenVINO where the CPU has it)")
    else:
        parser.add_argument("--backend", choices=BACKENDS, default="auto",
                            help="auto: TensorRT if importable, else ONNX Runtime CUDA, else OpenVINO (CPU) when "
                                 "installed, else ONNX Runtime CPU; the pick and its reason are printed")
        parser.add_argument("--precision", choices=("auto",) + PRECISIONS, default="auto",
                            help="auto: INT8 on TensorRT; on OpenVINO bf16 where the CPU has it, else INT8; FP32 on "
                                 "ONNX Runtime CPU (its INT8 is slower there); bf16: OpenVINO computes the FP32 file in bf16")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads per SR worker (ONNX Runtime, OpenVINO)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="SR threads, each with its own CPU engine (ONNX Runtime or OpenVINO), on consecutive frames: more "
                             "frames per second on a multi-core CPU (2 on 2 cores: 1.2-1.4x), more latency per frame")
    if bench:
        parser.add_argument("--frame-graph", choices=("off", "on", "both"), default="off",
                            help="off: the Python colour path; on: the bundle's whole-frame graph (colour inside the "
                                 "model; its model-only time includes the colour work); both: a row for each")
        return
    parser.add_argument("--frame-graph", choices=("auto", "on", "off"), default="auto",
                        help="run the bundle's whole-frame graph (colour conversion inside the model, BGR frames in "
                             "and out) instead of the Python colour path; auto: only where measured faster (not on CPUs)")
    parser.add_argument("--tile", type=int, default=0, metavar="PX",
                        help="process frames larger than PX (LR pixels) in overlapping tiles (0: whole frames)")


def check_engine_arguments(args: argparse.Namespace) -> None:
    """UsageError for --threads or --workers below 1, or a negative --tile."""
    for name in ("threads", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError("--%s must be at least 1, got %d" % (name, value))
    if getattr(args, "tile", 0) < 0:
        raise UsageError("--tile must be 0 or positive, got %d" % args.tile)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from kdedge.runtime.uri import DEFAULT_LATENCY_MS, INPUT_CODECS

    add_model_argument(parser)
    parser.add_argument("--input", metavar="URI", default="test://", help="source URI (default: test://)")
    parser.add_argument("--output", metavar="URI", default=None,
                        help="sink URI (default: display://0 when a display exists, else null://)")
    parser.add_argument("--frames", type=int, default=None, metavar="N", help="stop after N processed frames")
    add_engine_arguments(parser)
    parser.add_argument("--reconnect", action="store_true",
                        help="re-open a camera or stream that fails, with exponential backoff")
    parser.add_argument("--source-timeout", type=float, default=10.0, metavar="S",
                        help="a live source that delivers no frame for S seconds has failed (0: wait forever)")
    parser.add_argument("--overlay", action="store_true", help="draw FPS, latency and drops on the output")
    parser.add_argument("--stats-json", metavar="PATH", default=None, help="write run statistics here at the end")
    parser.add_argument("--input-width", type=int, default=None, help="camera mode width (csi, v4l2)")
    parser.add_argument("--input-height", type=int, default=None, help="camera mode height (csi, v4l2)")
    parser.add_argument("--input-rate", type=float, default=None, help="camera frame rate (csi, v4l2)")
    parser.add_argument("--input-loop", type=int, default=0, help="replay a file N times (-1: forever)")
    parser.add_argument("--input-codec", default="auto", choices=INPUT_CODECS,
                        help="rtsp: the stream's codec (auto = h264); v4l2: the camera format to ask for "
                             "(auto: the best mode, MJPG when it is faster; raw = uncompressed YUYV)")
    parser.add_argument("--input-latency", type=int, default=DEFAULT_LATENCY_MS, metavar="MS",
                        help="rtsp jitter buffer in ms (default %d, as jetson-utils)" % DEFAULT_LATENCY_MS)
    parser.add_argument("--output-codec", default=None, help="fourcc for a video output (default by extension)")
    parser.add_argument("--output-fps", type=float, default=None, help="frame rate written into a video output")
    parser.add_argument("--quiet", action="store_true", help="no console status lines")


def build_parser() -> argparse.ArgumentParser:
    from kdedge.runtime.uri import USAGE

    parser = argparse.ArgumentParser(
        prog="python -m kdedge.camera", description=__doc__.strip().splitlines()[0],
        epilog="\n".join(__doc__.strip().splitlines()[2:]) + "\n\n" + USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from kdedge.runtime.pipeline import run_pipeline
    from kdedge.runtime.uri import VideoOptions, display_available

    model = model_or_default(args.model)
    output = args.output or ("display://0" if display_available() else "null://")
    if args.frames is not None and args.frames < 1:
        raise UsageError("--frames must be at least 1, got %d" % args.frames)
    check_engine_arguments(args)
    if args.input_latency < 0:
        raise UsageError("--input-latency must be 0 or more milliseconds, got %d" % args.input_latency)
    if args.source_timeout < 0:
        raise UsageError("--source-timeout must be 0 (wait forever) or more seconds, got %g" % args.source_timeout)
    src_opts = VideoOptions(width=args.input_width, height=args.input_height, rate=args.input_rate,
                            loop=args.input_loop, codec=None if args.input_codec == "auto" else args.input_codec,
                            latency_ms=args.input_latency)
    sink_opts = None
    if args.output_codec or args.output_fps:
        sink_opts = VideoOptions(codec=args.output_codec, fps=args.output_fps or 30.0)
    stats = run_pipeline(model, args.input, output, backend=args.backend, precision=args.precision,
                         threads=args.threads, workers=args.workers, frame_graph=args.frame_graph, frames=args.frames, tile=args.tile,
                         reconnect=args.reconnect,
                         stats_json=args.stats_json, overlay=args.overlay, quiet=args.quiet,
                         source_options=src_opts, sink_options=sink_opts, source_timeout=args.source_timeout)
    if stats["error"] and args.quiet:  # otherwise the pipeline has already said it
        print("kdedge.camera: error: %s" % stats["error"], file=sys.stderr)
    return exit_status(stats)


def exit_status(stats) -> int:
    """0 done; 1 a source, sink or stats file failed; 130 / 143 stopped by SIGINT / SIGTERM."""
    if stats.get("error") or stats["end_reason"] in ("source-error", "sink-error", "model-error"):
        return 1
    if stats.get("signal"):
        return SIGNAL_EXIT.get(stats["signal"], 1)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # unknown flags: argparse prints usage and exits 2
    from kdedge.cli._common import guarded

    return guarded("kdedge.camera", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
