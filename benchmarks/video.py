"""Video: per-frame Y-PSNR and temporal flicker on Vid4 `calendar` (41 frames, 720x576) at x2.

Input is each ground-truth frame downscaled with MATLAB bicubic (the protocol's LR), so the per-frame
Y-PSNR is the image protocol applied frame by frame. Flicker: a per-frame SR model can be sharp on every
frame yet shimmer, because its errors change from frame to frame. For frames t-1, t we compare the
frame-to-frame change of the output with that of the ground truth,

    flicker(t) = mean | (SR_t - SR_{t-1}) - (GT_t - GT_{t-1}) |      (Y, 0..255, border shaved)

which is 0 when the output moves exactly like the truth (a constant error cancels) and grows with
temporally unstable detail (`kdedge.metrics.temporal_flicker`, the metric the footage tools use). `kdedge.metrics.motion_ratio(t) = mean|SR_t - SR_{t-1}| / mean|GT_t - GT_{t-1}|` says
whether the output moves more (>1, flicker) or less (<1, smoothing) than the truth.

    python benchmarks/video.py [--quick]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from common import DATA, SCALE, Row, discover_rows, limit_threads, results_dir, save_figure, write_json
from kdedge.metrics import motion_ratio

CLIP = DATA / "video" / "calendar"
VIDEO_ROWS = ("bicubic", "fsrcnn", "kdedge-fp32", "kdedge-int8", "kdedge-fast-int8")  # rows absent from the suite are skipped


def load_clip(limit: Optional[int] = None) -> List[np.ndarray]:
    from kdedge.data.images import read_image

    frames = sorted(CLIP.glob("*.png"))[:limit]
    if not frames:
        raise FileNotFoundError("no frames in %s" % CLIP)
    return [read_image(p) for p in frames]


def run(rows: Optional[List[Row]] = None, quick: bool = False) -> Dict:
    import upscalers
    from kdedge.data.color import rgb_to_y
    from kdedge.data.imresize import bicubic_downscale, modcrop
    from kdedge.evaluate import super_resolve
    from kdedge.metrics import psnr, temporal_flicker

    limit_threads()
    rows = rows if rows is not None else discover_rows()
    frames = load_clip(4 if quick else None)
    hrs = [modcrop(f, SCALE) for f in frames]
    lrs = [bicubic_downscale(h, SCALE) for h in hrs]
    gts = [rgb_to_y(h) for h in hrs]
    results = []
    for key in VIDEO_ROWS:
        row = next((r for r in rows if r.key == key), None)
        if row is None:
            continue
        entry = {"key": key, "label": row.label, "status": row.status}
        if row.ok:
            t0 = time.perf_counter()
            try:
                up = upscalers.upscaler(row)
                ys = [super_resolve(up, lr)["y"] for lr in lrs]
                entry["psnr"] = [psnr(y, g, shave=SCALE) for y, g in zip(ys, gts)]
                entry["flicker"] = temporal_flicker(ys, gts, shave=SCALE).tolist()
                entry["motion_ratio"] = motion_ratio(ys, gts, shave=SCALE).tolist()
                entry["mean_psnr"] = float(np.mean(entry["psnr"]))
                entry["mean_flicker"] = float(np.mean(entry["flicker"]))
            except Exception as exc:
                entry["status"] = "error: %s: %s" % (type(exc).__name__, exc)
            entry["seconds"] = round(time.perf_counter() - t0, 1)
        results.append(entry)
        print("video: %-14s %s" % (key, ("PSNR %.2f flicker %.3f" % (entry["mean_psnr"], entry["mean_flicker"]))
                                   if "mean_psnr" in entry else entry["status"]), flush=True)
    out = {"clip": str(CLIP), "frames": len(frames), "scale": SCALE, "quick": quick,
           "lr": "MATLAB bicubic x%d of each frame" % SCALE, "rows": results}
    write_json(results_dir(quick) / "video.json", out)
    out["figures"] = [str(p) for p in figures(out, results_dir(quick))]
    return out


def figures(res: Dict, folder: Path) -> List[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in res["rows"] if "psnr" in r]
    paths = []
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for r in done:
        ax.plot(range(1, len(r["psnr"]) + 1), r["psnr"], label="%s (mean %.2f dB)" % (r["key"], r["mean_psnr"]))
    ax.set_xlabel("frame")
    ax.set_ylabel("Y-PSNR (dB)")
    ax.set_title("calendar x%d: per-frame Y-PSNR" % res["scale"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    paths.append(save_figure(fig, folder / "video_psnr.png"))
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in done:
        t = range(2, len(r["flicker"]) + 2)
        a1.plot(t, r["flicker"], label="%s (mean %.2f)" % (r["key"], r["mean_flicker"]))
        a2.plot(t, r["motion_ratio"], label=r["key"])
    a1.set_xlabel("frame t")
    a1.set_ylabel("mean |dSR - dGT| (Y levels)")
    a1.set_title("temporal flicker (0 = moves like the truth)")
    a2.axhline(1.0, color="k", lw=0.8)
    a2.set_xlabel("frame t")
    a2.set_ylabel("mean|dSR| / mean|dGT|")
    a2.set_title("frame-to-frame change vs ground truth")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    paths.append(save_figure(fig, folder / "video_flicker.png"))
    plt.close(fig)
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="first 4 frames, written to results/quick (development)")
    args = p.parse_args(argv)
    run(quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
