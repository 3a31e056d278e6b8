"""Measure a model's PSNR and SSIM under the standard SR protocol (the numbers papers print).

HR images are mod-cropped to the scale, LR images made by a MATLAB-compatible bicubic,
the SR output rounded to uint8, and PSNR/SSIM computed on MATLAB's Y channel with `scale`
pixels shaved off each border. Use it to check that a teacher reproduces its paper before you
distil it, and to compare every precision of an exported bundle on equal terms.

--model takes: an architecture name with --weights (imdn, rlfn, rlfn_s, or a student), a zoo name
(see `kdedge zoo list`), a weights file (architecture detected), a kdedge checkpoint
(.safetensors), an ONNX file, a bundle folder, a shipped bundle's name (default, fast), or `bicubic`.

ONNX files and bundles run through the runtime's own backends, the code the camera runs:
--backend ort-cpu (ONNX Runtime, the default) or openvino; --precision picks the bundle's file
(default: the bundle's default precision), and bf16 runs the FP32 file in bf16 on OpenVINO. The
report names the backend and precision it measured.

examples:
  kdedge eval --model bicubic --data ../shared/data/test/Set5 --scale 2
  kdedge eval --model imdn --weights ../shared/weights/IMDN_x2.pth --data ../shared/data/test/Set5 --scale 2
  kdedge eval --model runs/distill/best.safetensors --data Set14/ --json > set14.json
  kdedge eval --model bundle/ --precision int8 --data Set5/ --crops crops/
  kdedge eval --model default --backend openvino --precision int8 --data ../shared/data/test/Set5
"""
from __future__ import annotations

import json
import sys

from kdedge.cli._common import add_config_argument
from kdedge.errors import KdedgeError


def add_arguments(parser) -> None:
    from kdedge.runtime.backends import CPU_BACKENDS, PRECISIONS  # light: numpy and kdedge.errors only

    parser.add_argument("--model", help="what to evaluate (see above)")
    parser.add_argument("--weights", help="weights file for an architecture name (.pth or .safetensors)")
    parser.add_argument("--data", help="folder of HR images (png/jpg/bmp/tiff)")
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), help="upscaling factor (bundles and checkpoints carry it)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="bundle precision (default: the bundle's default); bf16: the FP32 file in bf16, OpenVINO only")
    parser.add_argument("--backend", choices=CPU_BACKENDS,
                        help="engine for ONNX files and bundles (default: ort-cpu); torch models take --device")
    parser.add_argument("--threads", type=int, help="inference threads of the ONNX backend (default: the engine's own)")
    parser.add_argument("--gray", default="gray-as-y", choices=("gray-as-y", "gray-as-rgb"),
                        help="grayscale-image convention: grey values as Y (published bicubic tables) or replicated to RGB (BasicSR)")
    parser.add_argument("--device", default="cpu", help="torch device for torch models (cpu, cuda, cuda:1)")
    parser.add_argument("--crops", metavar="DIR", help="save bicubic | model | ground-truth centre crops as PNG here")
    parser.add_argument("--json", action="store_true", help="print one JSON object (psnr_y, ssim_y, per-image values) on stdout")
    add_config_argument(parser)


def run(args) -> int:
    from kdedge.evaluate import evaluate, load_upscaler

    if not args.model:
        raise KdedgeError("--model is required", fix="e.g. --model bicubic --scale 2")
    if not args.data:
        raise KdedgeError("--data is required", fix="give a folder of HR images, e.g. ../shared/data/test/Set5")
    if args.crops:  # checked first: a folder that cannot be written must not cost the whole evaluation
        from kdedge.paths import check_output, check_writable_dir

        check_output(args.crops, [args.data], "--crops folder")
        check_writable_dir(args.crops, "--crops folder", create=True)
    upscaler = load_upscaler(args.model, weights=args.weights, scale=args.scale, device=args.device,
                             precision=args.precision, backend=args.backend, threads=args.threads)
    try:
        result = evaluate(upscaler, args.data, gray_convention=args.gray, crops_dir=args.crops, progress=not args.json)
    finally:
        close = getattr(upscaler, "close", None)
        if close is not None:
            close()
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    width = max(len(r["name"]) for r in result["images"]) + 2
    print("%s on %s, x%d (%s)" % (result["model"], result["data"], result["scale"], result["protocol"]))
    if result["backend"]:
        print("backend %s, precision %s (%s)" % (result["backend"], result["precision"] or "-", result["engine"]))
    print("%s %8s %8s" % ("image".ljust(width), "PSNR-Y", "SSIM-Y"))
    for r in result["images"]:
        print("%s %8.2f %8.4f" % (r["name"].ljust(width), r["psnr_y"], r["ssim_y"]))
    print("%s %8.2f %8.4f" % ("mean".ljust(width), result["psnr_y"], result["ssim_y"]))
    if args.crops:
        print("crops (bicubic | %s | ground truth) written to %s" % (result["model"], args.crops))
    return 0
