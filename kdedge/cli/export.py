"""Export a checkpoint to a bundle: FP32 ONNX, calibrated symmetric INT8 Q/DQ, FP16, manifest (and a TensorRT engine).

The bundle folder is what `python -m kdedge.camera`, `kdedge bench` and `kdedge eval` take. INT8 is
calibrated on the shipped calib_data/ (or --calib DIR); the calibration method and the layers kept
in float are chosen by measurement; PSNR of every precision against ground truth and against FP32 is
printed and stored in manifest.json. When INT8 loses more than --max-drop dB the export fails
(exit 1), names the layers that hurt most, and leaves nothing behind. The formats (and their flags)
are listed after the options.

examples:
  kdedge export runs/distill/best.safetensors --int8 --out bundle/
  kdedge export best.safetensors --int8 --calib my_frames/ --val my_val/ --max-drop 0.1 --out bundle/
  kdedge export imdn --weights IMDN_x2.pth --fp16 --out imdn_x2/      # a teacher: FP32 + FP16 only
  kdedge export best.safetensors --int8 --report ../shared/data/test/Set5 --report ../shared/data/test/Set14 --out b/
"""
from __future__ import annotations

import argparse

from kdedge.cli._common import add_config_argument
from kdedge.errors import KdedgeError


def formats_help() -> str:
    """The formats table of `--help`, from export's FORMATS (the table that also validates and names files)."""
    from kdedge.export.api import FORMATS, option_default

    lines = ["formats:"]
    for name, f in FORMATS.items():
        opt = f["option"]
        flag = "always" if opt is None else "--" + opt + (" (default; --no-%s to skip)" % opt if option_default(opt) else "")
        if f["requires"]:
            flag += " (with --%s)" % FORMATS[f["requires"]]["option"]
        lines.append("  %-10s %-22s %s: %s" % (name, _short(f["file"]), flag, f["what"]))
    return "\n".join(lines)


def _short(file: str) -> str:
    return file if len(file) <= 22 else file.split("/")[0] + "/*.engine"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from kdedge.export.api import CALIB_METHODS, DEFAULT_MAX_DROP, FORMATS, option_default

    parser.add_argument("model", nargs="?", default=None,
                        help="kdedge checkpoint (.safetensors), weights file, zoo name, or an architecture with --weights")
    parser.add_argument("--weights", default=None, help="weights file when MODEL is an architecture name")
    parser.add_argument("--out", default=None, help="bundle folder to write (must not exist unless --overwrite)")
    for name, f in FORMATS.items():  # one flag per optional format: --int8, --fp16 (and --no-fp16), --u8s8, --engine
        opt = f["option"]
        if opt is None:
            continue
        on = option_default(opt)
        parser.add_argument("--" + opt, dest=opt, action="store_true", default=on,
                            help="write %s (format %s, below)%s" % (_short(f["file"]), name, "; default: on" if on else ""))
        if on:
            parser.add_argument("--no-" + opt, dest=opt, action="store_false", help="skip %s" % _short(f["file"]))
    parser.add_argument("--calib", default=None, metavar="DIR", help="calibration images (default: the shipped calib_data/)")
    parser.add_argument("--val", default=None, metavar="DIR",
                        help="validation images for the accuracy gate (default: every 5th calibration image, held out)")
    parser.add_argument("--report", action="append", default=[], metavar="DIR",
                        help="also measure every precision on this folder and store the rows (repeatable; not gated)")
    parser.add_argument("--calib-method", default=option_default("calib_method"), choices=CALIB_METHODS,
                        help="activation range method; auto measures all four and keeps the best (default)")
    parser.add_argument("--max-drop", type=float, default=None, metavar="DB",
                        help="fail when INT8 loses more PSNR-Y than this against FP32 (default %g)" % DEFAULT_MAX_DROP)
    parser.add_argument("--no-mixed", dest="mixed", action="store_false", default=option_default("mixed_precision"),
                        help="quantize every layer (skip the sensitivity pass that keeps fragile layers in float)")
    parser.add_argument("--name", default=None, help="bundle name in the manifest")
    parser.add_argument("--overwrite", action="store_true", default=False, help="replace an existing --out folder")
    add_config_argument(parser)
    parser.epilog = formats_help() + ("\n\n" + parser.epilog if parser.epilog else "")


def run(args) -> int:
    from kdedge.export.api import ExportOptions, export_bundle, next_commands

    if not args.model:
        raise KdedgeError("no model given", fix="kdedge export CHECKPOINT --int8 --out DIR")
    if not args.out:
        raise KdedgeError("no output folder given", fix="add --out DIR")
    opts = ExportOptions(
        out=args.out, int8=args.int8, fp16=args.fp16, u8s8=args.u8s8, engine=args.engine, calib=args.calib,
        val=args.val, calib_method=args.calib_method, max_drop=args.max_drop, mixed_precision=args.mixed,
        name=args.name, overwrite=args.overwrite, weights=args.weights, report=list(args.report or []),
    )
    result = export_bundle(args.model, opts)
    print("\nnext:")
    for cmd in next_commands(result["out"]):
        print("  " + cmd.replace("<s>", str(result["manifest"].scale)))
    return 0
