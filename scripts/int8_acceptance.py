"""Set5/Set14 PSNR of every precision of a bundle, next to the naive INT8 baseline (acceptance numbers).

The naive baseline is what a first attempt gives: every layer quantized, symmetric INT8, min-max
ranges, calibrated on the same images the bundle's INT8 used (calib_data/ minus the held-out fifth).
Everything is measured by `kdedge.evaluate.evaluate` (the `kdedge eval` protocol: MATLAB bicubic LR,
uint8 SR, Y, shave = scale, grayscale as Y).

Run: python scripts/int8_acceptance.py BUNDLE [--data ../shared/data/test] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "test"))
    ap.add_argument("--sets", default="Set5,Set14")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from kdedge.common import FILE_PRECISIONS
    from kdedge.evaluate import evaluate, onnx_upscaler
    from kdedge.export import calibrate as cal
    from kdedge.export.steps import split_holdout as _split
    from kdedge.export.onnx_export import save_model
    from kdedge.export.quantize import quantize_qdq
    from kdedge.runtime.bundle import load_bundle

    bundle = load_bundle(args.bundle)
    paths = cal.list_images(cal.default_calib_dir())
    images = cal.read_images(paths)
    calib_idx, _ = _split([p.name for p in paths])
    inputs = cal.lr_inputs([images[i] for i in calib_idx], bundle.scale, bundle.color)
    fp32 = bundle.model_path("fp32")
    with tempfile.TemporaryDirectory() as tmp:
        naive = Path(tmp) / "naive.onnx"
        save_model(quantize_qdq(fp32, cal.ranges(cal.collect_statistics(fp32, inputs), "minmax")), naive)
        models = {p: bundle.model_path(p) for p in FILE_PRECISIONS if p in bundle.precisions}
        models["int8_naive_minmax"] = naive
        results = {}
        for ds in args.sets.split(","):
            row = {}
            for name, path in models.items():
                with onnx_upscaler(path, bundle.scale, bundle.color) as up:
                    row[name] = evaluate(up, Path(args.data) / ds, progress=False)["psnr_y"]
            results[ds] = row
    print("%-18s" % "precision" + "".join("%12s %9s" % (ds, "drop") for ds in results))
    for name in models:
        print("%-18s" % name + "".join("%12.3f %9.3f" % (results[ds][name], results[ds]["fp32"] - results[ds][name]) for ds in results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
