"""Pictures: PSNR versus FPS with the Pareto front, and crop grids (bicubic / FSRCNN / kdedge INT8 / teacher / GT).

The Pareto front is the set of rows that no other row beats on both axes (higher PSNR *and* higher
FPS). Crop grids show one Set14 image and one calendar frame; the crop window is the 96x96 HR window
where the teacher's output differs most from bicubic (where super-resolution has something to show),
found automatically so the picture is reproducible and not hand-picked.

    python benchmarks/plots.py
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from common import DATA, SCALE, Row, discover_rows, limit_threads, read_json, results_dir, save_figure
from kdedge.metrics import best_window, pareto_front

GRID_ROWS = ("bicubic", "fsrcnn", "kdedge-int8", "imdn")
SET14_IMAGE = "barbara"
CALENDAR_FRAME = 21
CROP = 96


def _points(quality: Dict, speed: Dict, dataset: str, size: str, mode: str):
    q = {r["key"]: r for r in quality.get("rows", [])}
    pts = []
    for s in speed.get("rows", []):
        fps = s.get("results", {}).get(size, {}).get(mode, {}).get("median")
        qr = q.get(s["key"], {})
        p = (qr.get(dataset) or {}).get("psnr")
        if fps and p:
            pts.append((s["key"], s.get("group", ""), fps, p))
    return pts


def psnr_fps_figure(quality: Dict, speed: Dict, path: Path, size: str = "540x960", mode: str = "e2e") -> Optional[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    drawn = False
    for ax, dataset in zip(axes, ("set5", "set14")):
        pts = _points(quality, speed, dataset, size, mode)
        if not pts:
            continue
        drawn = True
        front = pareto_front([(p[2], p[3]) for p in pts])
        n_group: Dict[str, int] = {}
        for i, (key, group, fps, p) in enumerate(pts):
            style = {"kdedge": dict(marker="*", s=160, color="tab:red", zorder=3),
                     "teacher": dict(marker="s", s=50, color="tab:purple"),
                     "baseline": dict(marker="o", s=50, color="tab:blue")}.get(group, dict(marker="o", s=40, color="gray"))
            ax.scatter([fps], [p], **style)
            k = n_group[group] = n_group.get(group, -1) + 1  # stagger labels of neighbouring points
            ax.annotate(key, (fps, p), textcoords="offset points", xytext=(6, 4 + 10 * (k % 3)), fontsize=8)
        fx = [pts[i][2] for i in front]
        fy = [pts[i][3] for i in front]
        ax.step(fx, fy, where="pre", color="k", lw=1, ls="--", label="Pareto front", zorder=1)
        ax.axvline(30, color="tab:green", lw=1, label="30 FPS")
        ax.set_xscale("log")
        ax.set_xlabel("%s FPS at %s LR (ORT CPU / OpenCV, %s threads)" % ("end-to-end" if mode == "e2e" else "model-only", size,
                                                                          speed.get("threads", 2)))
        ax.set_ylabel("%s x%d Y-PSNR (dB)" % ({"set5": "Set5", "set14": "Set14"}[dataset], SCALE))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower left")
        ax.set_title("%s: quality vs speed (kdedge = red stars)" % {"set5": "Set5", "set14": "Set14"}[dataset])
    if not drawn:
        plt.close(fig)
        return None
    out = save_figure(fig, path)
    plt.close(fig)
    return out


def crop_grid(hr: np.ndarray, rows: List[Row], path: Path, title: str) -> Path:
    """One figure: a crop of each row's SR output and of the ground truth, with full-image Y-PSNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import upscalers
    from kdedge.data.color import rgb_to_y
    from kdedge.data.imresize import bicubic_downscale, modcrop
    from kdedge.evaluate import super_resolve
    from kdedge.metrics import psnr

    hr = modcrop(hr, SCALE)
    lr = bicubic_downscale(hr, SCALE)
    gt_y = rgb_to_y(hr)
    panels = []
    for row in rows:
        if not row.ok:
            panels.append((row.key, None, row.status))
            continue
        res = super_resolve(upscalers.upscaler(row), lr)
        panels.append((row.key, res["image"], "%.2f dB" % psnr(res["y"], gt_y, shave=SCALE)))
    ref = {k: img for k, img, _ in panels if img is not None}
    a = rgb_to_y(ref["imdn"]) if "imdn" in ref else gt_y
    b = rgb_to_y(ref["bicubic"]) if "bicubic" in ref else gt_y
    y0, x0 = best_window(a, b, crop=CROP)
    panels.append(("ground truth", hr, ""))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0))
    for ax, (name, img, note) in zip(axes, panels):
        ax.axis("off")
        if img is None:
            ax.text(0.5, 0.5, "%s\n%s" % (name, note[:40]), ha="center", va="center", fontsize=8, wrap=True)
            continue
        ax.imshow(img[y0:y0 + CROP, x0:x0 + CROP], interpolation="nearest")
        ax.set_title("%s\n%s" % (name, note), fontsize=9)
    fig.suptitle("%s (crop %dx%d at y=%d, x=%d; PSNR of the whole image, Y)" % (title, CROP, CROP, y0, x0), fontsize=10)
    out = save_figure(fig, path)
    plt.close(fig)
    return out


def run(rows: Optional[List[Row]] = None, quick: bool = False) -> List[Path]:
    from kdedge.data.images import read_image

    limit_threads()
    rows = rows if rows is not None else discover_rows()
    folder = results_dir(quick)
    quality = read_json(folder / "quality.json", {}) or {}
    speed = read_json(folder / "speed.json", {}) or {}
    made = []
    for size in ("540x960", "270x480"):
        p = psnr_fps_figure(quality, speed, folder / ("psnr_vs_fps_%s.png" % size), size=size)
        if p:
            made.append(p)
    by_key = {r.key: r for r in rows}
    grid_rows = [by_key[k] for k in GRID_ROWS if k in by_key]
    set14 = next((p for p in sorted((DATA / "test" / "Set14").iterdir()) if p.stem == SET14_IMAGE), None)
    if set14 is not None:
        made.append(crop_grid(read_image(set14), grid_rows, folder / "crops_set14.png", "Set14 %s x%d" % (SET14_IMAGE, SCALE)))
    frames = sorted((DATA / "video" / "calendar").glob("*.png"))
    if len(frames) >= CALENDAR_FRAME:
        made.append(crop_grid(read_image(frames[CALENDAR_FRAME - 1]), grid_rows, folder / "crops_calendar.png",
                              "calendar frame %d x%d" % (CALENDAR_FRAME, SCALE)))
    for p in made:
        print("plots: wrote %s" % p, flush=True)
    return made


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="read and write the --quick development results")
    run(quick=p.parse_args(argv).quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
