"""Export a checkpoint to a bundle: FP32 ONNX, calibrated symmetric INT8 Q/DQ, FP16, manifest (and a TensorRT engine).

The bundle folder is what `python -m kdedge.camera`, `kdedge bench` and `kdedge eval` take. INT8 is
calibrated on the shipped calib_data/ (or --calib DIR); the calibration method and the layers kept
in float are chosen by measurement; PSNR of every precision against ground truth and against FP32 is
printed and stored in manifest.json. When INT8 loses more than --max-drop dB the export fails
(exit 1), names the layers that hurt most, and leaves nothing behind.

formats:
  fp32    model.onnx            always (dynamic H/W, opset 17, parity with torch checked)
  int8    model.int8.onnx       --int8: symmetric INT8 activations, per-channel INT8 weights (TensorRT form)
  fp16    model.fp16.onnx       --fp16 (on by default; --no-fp16 to skip)
  u8s8    model.int8_u8s8.onnx  --u8s8: asymmetric variant, faster on ONNX Runtime CPU
  engine  engines/*.engine      --engine: TensorRT engine for this device (on a Jetson; never portable)

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", default=None,
                        help="kdedge checkpoint (.safetensors), weights file, zoo name, or an architecture with --weights")
    parser.add_argument("--weights", default=None, help="weights file when MODEL is an architecture name")
    parser.add_argument("--out", default=None, help="bundle folder to write (must not exist unless --overwrite)")
    parser.add_argument("--int8", action="store_true", default=None, help="calibrated symmetric INT8 Q/DQ model (the default precision)")
    parser.add_argument("--fp16", dest="fp16", action="store_true", default=None, help="FP16 model (default: on)")
    parser.add_argument("--no-fp16", dest="fp16", action="store_false", help="skip the FP16 model")
    parser.add_argument("--u8s8", action="store_true", default=False, help="also an asymmetric U8S8 model for ONNX Runtime CPU")
    parser.add_argument("--calib", default=None, metavar="DIR", help="calibration images (default: the shipped calib_data/)")
    parser.add_argument("--val", default=None, metavar="DIR",
                        help="validation images for the accuracy gate (default: every 5th calibration image, held out)")
    parser.add_argument("--report", action="append", default=[], metavar="DIR",
                        help="also measure every precision on this folder and store the rows (repeatable; not gated)")
    parser.add_argument("--calib-method", default="auto", choices=["auto", "minmax", "percentile", "entropy", "mse"],
                        help="activation range method; auto measures all four and keeps the best (default)")
    parser.add_argument("--max-drop", type=float, default=None, metavar="DB",
                        help="fail when INT8 loses more PSNR-Y than this against FP32 (default 0.2)")
    parser.add_argument("--no-mixed", dest="mixed", action="store_false", default=True,
                        help="quantize every layer (skip the sensitivity pass that keeps fragile layers in float)")
    parser.add_argument("--engine", action="store_true", default=False, help="also build a TensorRT engine (needs tensorrt)")
    parser.add_argument("--name", default=None, help="bundle name in the manifest")
    parser.add_argument("--overwrite", action="store_true", default=False, help="replace an existing --out folder")
    add_config_argument(parser)


def run(args) -> int:
    from kdedge.export.api import DEFAULT_MAX_DROP, ExportOptions, export_bundle, next_commands

    if not args.model:
        raise KdedgeError("no model given", fix="kdedge export CHECKPOINT --int8 --out DIR")
    if not args.out:
        raise KdedgeError("no output folder given", fix="add --out DIR")
    int8 = bool(args.int8)
    if args.max_drop is not None and not int8:
        raise KdedgeError("--max-drop only applies to INT8 export", fix="add --int8, or drop --max-drop")
    opts = ExportOptions(
        out=args.out, int8=int8, fp16=True if args.fp16 is None else args.fp16, u8s8=args.u8s8,
        engine=args.engine, calib=args.calib, val=args.val, calib_method=args.calib_method,
        max_drop=DEFAULT_MAX_DROP if args.max_drop is None else args.max_drop, mixed_precision=args.mixed,
        name=args.name, overwrite=args.overwrite, weights=args.weights, report=list(args.report or []),
    )
    result = export_bundle(args.model, opts)
    print("\nnext:")
    for cmd in next_commands(result["out"]).__iter__():
        print("  " + cmd.replace("<s>", str(result["manifest"]["scale"])))
    return 0
