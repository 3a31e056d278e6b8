"""Super-resolve image files, image folders or videos with a bundle (torch-free).

IN and OUT are paths or URIs as for `python -m kdedge.camera`: an image gives an image, a folder
gives a folder of PNGs with the same names, a video gives a video (.mp4 = mp4v, .avi = MJPG). A
progress bar is shown with tqdm when it is installed, else a plain counter.

Every write is checked: a full disk or an unwritable folder ends the run with exit status 1 and says
how many frames are safe; a video is written to a hidden .partial file and renamed only when it is
finished and reads back. OUT may not be IN. Ctrl-C / SIGTERM finish the frames already done and exit
130 / 143, saying how many of the input's frames the output holds.

examples:
  kdedge upscale photo.png photo_x2.png
  kdedge upscale frames/ frames_x2/ --model bundle/
  kdedge upscale clip.mp4 clip_x2.avi --backend ort-cpu --precision int8_u8s8 --stats-json stats.json
  kdedge upscale clip.mp4 clip_x2.mp4 --backend openvino --workers 2   # OpenVINO INT8, two SR threads
"""
from __future__ import annotations

import argparse
import sys
import time

from kdedge.camera import add_engine_arguments, add_model_argument
from kdedge.cli._common import add_config_argument
from kdedge.errors import KdedgeError, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", nargs="?", default=None, help="image, folder of images, or video")
    parser.add_argument("output", nargs="?", default=None, help="image, folder, or video file")
    add_model_argument(parser)
    add_engine_arguments(parser)
    parser.add_argument("--stats-json", default=None, metavar="PATH", help="write run statistics here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_argument(parser)


class _Progress:
    """tqdm when installed (it is not a runtime dependency), else a counter redrawn at most twice a second."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.last = 0.0
        if enabled:
            try:
                import tqdm  # noqa: F401

                self.tqdm = tqdm.tqdm
            except ImportError:
                self.tqdm = None

    def __call__(self, done: int, total) -> None:
        if not self.enabled:
            return
        if self.tqdm is not None:
            if self.bar is None:
                self.bar = self.tqdm(total=total, unit="frame", file=sys.stderr)
            self.bar.update(done - self.bar.n)
            return
        now = time.monotonic()
        if now - self.last >= 0.5 or done == total:
            self.last = now
            print("\r%d/%s frames" % (done, total if total else "?"), end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.last:
            print(file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from kdedge.camera import check_engine_arguments, exit_status, model_or_default
    from kdedge.runtime.pipeline import run_pipeline

    if not args.input or not args.output:
        raise UsageError("give an input and an output", fix="kdedge upscale IN OUT (see --help)")
    model = model_or_default(args.model)
    check_engine_arguments(args)
    if args.input.startswith(("csi://", "v4l2://", "rtsp://", "test://")) or args.input.startswith("/dev/video"):
        raise KdedgeError("kdedge upscale is for files and folders; %s is live" % args.input,
                          fix="use python -m kdedge.camera --input %s --output OUT" % args.input)
    progress = _Progress(not args.no_progress)
    try:
        stats = run_pipeline(model, args.input, args.output, backend=args.backend, precision=args.precision,
                             threads=args.threads, workers=args.workers, frame_graph=args.frame_graph, tile=args.tile,
                             stats_json=args.stats_json, quiet=True, progress=progress)
    finally:
        progress.close()
    status = exit_status(stats)
    if stats["error"]:
        print("kdedge upscale: error: %s" % stats["error"], file=sys.stderr)
        return status
    total = stats.get("input_frames")
    print("%d frame(s) %s -> %s in %.1f s (%s)" % (stats["frames_safe"], args.input, stats["output_path"] or args.output,
                                                 stats["elapsed_s"], stats["backend"]))
    if stats.get("signal"):
        print("kdedge upscale: interrupted by %s: %s holds %d frame(s)%s; the rest of %s was not processed"
              % (stats["signal"], stats["output_path"] or args.output, stats["frames_safe"],
                 "" if total is None else " of %d" % total, args.input), file=sys.stderr)
    return status
