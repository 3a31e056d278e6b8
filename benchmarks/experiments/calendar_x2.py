"""Acceptance run: Vid4 "calendar" through the runtime at x2, Y-PSNR next to bicubic.

The ground-truth frames (../shared/data/video/calendar) are mod-cropped and downscaled x2 with the
MATLAB-style bicubic (kdedge.data.imresize), written as lossless PNG frames, and fed to the real
pipeline (ONNX Runtime backend) twice: into a video (checks frame count and size) and into PNG
frames (measured losslessly). Y-PSNR follows the standard protocol (MATLAB Y, shave = scale)
against the original frames, beside MATLAB-bicubic and OpenCV-bicubic upscaling of the same LR.

    python benchmarks/experiments/calendar_x2.py BUNDLE [--frames N] [--out benchmarks/experiments/results/calendar_x2.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def calendar_eval(bundle, calendar_dir, work_dir, frames=None, backend="ort-cpu", precision="auto", threads=None):
    import cv2

    from kdedge.data.color import rgb_to_y
    from kdedge.data.imresize import bicubic_downscale, bicubic_upscale, modcrop
    from kdedge.metrics import psnr
    from kdedge.runtime.bundle import load_bundle
    from kdedge.runtime.pipeline import run_pipeline

    b = load_bundle(bundle)
    s = b.scale
    files = sorted(Path(calendar_dir).glob("*.png"))[:frames]
    work = Path(work_dir)
    lr_dir, out_dir = work / "lr", work / "sr_frames"
    lr_dir.mkdir(parents=True, exist_ok=True)
    hrs = []
    for f in files:
        hr = modcrop(cv2.imread(str(f))[..., ::-1], s)  # RGB
        hrs.append(hr)
        cv2.imwrite(str(lr_dir / f.name), bicubic_downscale(hr, s)[..., ::-1].copy())
    video = work / "sr.avi"
    kw = dict(backend=backend, precision=precision, threads=threads, quiet=True)
    vstats = run_pipeline(b.path, str(lr_dir), str(video), **kw)
    fstats = run_pipeline(b.path, str(lr_dir), str(out_dir) + "/", **kw)
    cap = cv2.VideoCapture(str(video))
    n_video, vsize = 0, None
    while True:
        ok, fr = cap.read()
        if not ok:
            break
        n_video, vsize = n_video + 1, fr.shape
    cap.release()
    rows = {"sr": [], "bicubic_matlab": [], "bicubic_opencv": []}
    for f, hr in zip(files, hrs):
        lr = cv2.imread(str(lr_dir / f.name))[..., ::-1]
        sr = cv2.imread(str(out_dir / f.name))[..., ::-1]
        y_hr = rgb_to_y(hr)
        rows["sr"].append(psnr(rgb_to_y(sr), y_hr, shave=s))
        rows["bicubic_matlab"].append(psnr(rgb_to_y(bicubic_upscale(lr, s)), y_hr, shave=s))
        cv = cv2.resize(lr, (lr.shape[1] * s, lr.shape[0] * s), interpolation=cv2.INTER_CUBIC)
        rows["bicubic_opencv"].append(psnr(rgb_to_y(cv), y_hr, shave=s))
    hr_hw = list(hrs[0].shape[:2])
    return {
        "bundle": b.name, "backend": fstats["backend"], "frames": len(files), "scale": s,
        "hr_size_hw": hr_hw, "lr_size_hw": [hr_hw[0] // s, hr_hw[1] // s],
        "video": {"frames": n_video, "size_hw": list(vsize[:2]) if vsize else None, "fps": vstats["fps"]},
        "png_frames": fstats["frames_written"], "png_fps": fstats["fps"],
        "y_psnr": {k: float(np.mean(v)) for k, v in rows.items()},
        "protocol": "MATLAB bicubic x%d LR, MATLAB Y, shave %d, uint8 output, mean over frames" % (s, s),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--calendar", default=str(REPO.parent / "shared" / "data" / "video" / "calendar"))
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="engine threads (default: the backend's)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = calendar_eval(args.bundle, args.calendar, tmp, frames=args.frames, precision=args.precision,
                               threads=args.threads)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
