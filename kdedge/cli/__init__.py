"""The `kdedge` command: one module per subcommand, imported only when that subcommand runs.

Each command module has a docstring (its help text: first line is the summary), an
`add_arguments(parser)` function and a `run(args) -> int` function that is a thin call into a
public Python API. Commands import their heavy dependencies lazily, so `kdedge --help`,
`kdedge doctor` and the runtime commands work on a Jetson without torch. A command whose module
fails to import is still listed, and running it prints the import error and the extra to install.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from kdedge import __version__
from kdedge.errors import KdedgeError

# name -> (module, one-line summary, pip extra that provides its dependencies)
COMMANDS = {
    "eval": ("kdedge.cli.eval", "measure PSNR/SSIM of a model, checkpoint, ONNX file or bundle (standard SR protocol)", "train"),
    "train": ("kdedge.cli.train", "train a student on paired data without a teacher", "train"),
    "distill": ("kdedge.cli.distill", "distil a teacher into a small INT8-friendly student", "train"),
    "qat": ("kdedge.cli.qat", "quantization-aware fine-tuning: a student that loses (almost) nothing in all-INT8", "train"),
    "export": ("kdedge.cli.export", "export a checkpoint to an ONNX / INT8 / FP16 bundle (and a TensorRT engine)", "export"),
    "upscale": ("kdedge.cli.upscale", "super-resolve image files, folders or videos with a bundle", "cpu"),
    "bench": ("kdedge.cli.bench", "latency and FPS of a bundle per backend, precision and input size", "cpu"),
    "doctor": ("kdedge.cli.doctor", "check this machine: JetPack, CUDA, TensorRT, pycuda, ONNX Runtime, OpenCV, cameras", "cpu"),
    "zoo": ("kdedge.cli.zoo", "list, download and verify published teacher weights", "train"),
}

EPILOG = """examples:
  kdedge distill                                   # embedded teacher -> student, a few minutes on a CPU
  kdedge eval --model bicubic --data ../shared/data/test/Set5 --scale 2
  kdedge eval --model imdn --weights IMDN_x2.pth --data Set5/ --scale 2 --json
  kdedge export runs/distill/last.safetensors --int8 --out bundle/
  python -m kdedge.camera --model bundle/ --input v4l2:///dev/video0 --output display://0

run `kdedge COMMAND --help` for the options of one command.

exit status: 0 done; 1 failed (the message names the file and the fix); 2 bad arguments;
130 / 143 stopped by SIGINT / SIGTERM (upscale finishes its output, distill saves a checkpoint first)."""


def _overview() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: kdedge [--version] COMMAND [options]", "", __doc__.splitlines()[0], "", "commands:"]
    for name, (_, summary, _) in COMMANDS.items():
        lines.append("  %s  %s" % (name.ljust(width), summary))
    return "\n".join(lines) + "\n\n" + EPILOG


def build_parser(name: str):
    """Import one command module and build its argparse parser (docstring = help)."""
    module_name, summary, extra = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise KdedgeError(
            "`kdedge %s` cannot run: %s" % (name, exc),
            fix="pip install 'kdedge[%s]'" % extra,
        ) from exc
    from kdedge.cli._common import EXIT_HELP

    doc = (module.__doc__ or summary).strip()
    parser = argparse.ArgumentParser(
        prog="kdedge " + name,
        description=doc,
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    return module, parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_overview())
        return 0
    if argv[0] == "--version":
        print("kdedge", __version__)
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print("kdedge: unknown command %r; choose one of: %s" % (name, ", ".join(COMMANDS)), file=sys.stderr)
        return 2

    def call() -> int:
        module, parser = build_parser(name)
        from kdedge.cli._common import parse_with_config

        args = parse_with_config(parser, argv[1:])
        return module.run(args)

    from kdedge.cli._common import guarded

    return guarded("kdedge " + name, call)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
