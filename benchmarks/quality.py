"""Quality table: Y-PSNR / SSIM on Set5 and Set14 x2 for every row, plus parameters and MACs per LR pixel.

Protocol: `kdedge.evaluate.evaluate` (MATLAB-bicubic LR, uint8 SR, MATLAB Y, shave = scale). Set14's
grayscale `bridge` is scored as Y ("gray-as-y", the published bicubic convention); the Set14 mean under
"gray-as-rgb" (BasicSR's, which the IMDN/RLFN tables use) is reported beside it, recomputed from
bridge alone since no other image changes. The FSRCNN rows are OpenCV's own end-to-end `upsample()`
(what a dnn_superres user gets; it reproduces the 34.85 dB of ../shared/weights/README.md); the same
network fed MATLAB Y instead of OpenCV's full-range Y is recorded beside it on Set5.

    python benchmarks/quality.py [--quick] [--rows kdedge-int8,fsrcnn]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional


from common import read_json, DATA, SCALE, Row, discover_rows, limit_threads, machine, results_dir, write_json

SETS = ("Set5", "Set14")


def _subset(folder: Path, names: List[str], tmp: Path) -> Path:
    """A folder of symlinks to some images of `folder` (evaluate() takes folders)."""
    sub = tmp / folder.name
    sub.mkdir(parents=True, exist_ok=True)
    for p in sorted(folder.iterdir()):
        if p.stem in names:
            (sub / p.name).symlink_to(p)
    return sub


def _manifest_recorded(row: Row) -> Dict[str, float]:
    """What the bundle's manifest says this precision scores ({"Set5": psnr, ...}): a cross-check that
    the export's accuracy gate and this suite measure the same thing."""
    import json

    if not row.bundle:
        return {}
    try:
        rows = json.loads((Path(row.bundle) / "manifest.json").read_text())["accuracy"]["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    prec = "int8_naive_minmax" if row.build == "naive-minmax" else row.precision
    # compare with the manifest's rows of the same backend (bundles before the backend column had only ORT's)
    backend = "openvino" if row.runtime == "openvino" else "ort-cpu"
    return {r["dataset"]: r["psnr_vs_gt"] for r in rows
            if r.get("precision") == prec and r.get("backend", "ort-cpu") == backend
            and r.get("dataset") in SETS and r.get("psnr_vs_gt") is not None}


def evaluate_row(row: Row, up, sets=SETS, quick: bool = False) -> Dict:
    from kdedge.evaluate import evaluate

    out: Dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in sets:
            folder = DATA / "test" / name
            if quick:
                first = sorted(p.stem for p in folder.iterdir())[:1]
                folder = _subset(folder, first, Path(tmp) / "quick")
            res = evaluate(up, folder, gray_convention="gray-as-y", progress=False)
            out[name.lower()] = {"psnr": res["psnr_y"], "ssim": res["ssim_y"], "images": res["images"],
                                 "protocol": res["protocol"]}
            gray = [r for r in res["images"] if r["name"] == "bridge"]
            if gray:
                bridge = evaluate(up, _subset(DATA / "test" / name, ["bridge"], Path(tmp) / "gray"),
                                  gray_convention="gray-as-rgb", progress=False)["images"][0]
                n = len(res["images"])
                rgb_psnr = res["psnr_y"] + (bridge["psnr_y"] - gray[0]["psnr_y"]) / n
                rgb_ssim = res["ssim_y"] + (bridge["ssim_y"] - gray[0]["ssim_y"]) / n
                out[name.lower() + "_gray_as_rgb"] = {"psnr": rgb_psnr, "ssim": rgb_ssim}
    return out


def run(rows: Optional[List[Row]] = None, quick: bool = False, only: Optional[List[str]] = None,
        merge: bool = False) -> Dict:
    """Quality of every row (or of the `only` keys). With `merge`, the rows measured now replace their
    entries in the saved quality.json and the others keep theirs: quality does not depend on load or on
    anything but the row's files, so a new row (an engine added later) need not re-measure the table,
    nor lose rows whose inputs are not on this machine any more (the no-teacher twin's checkpoint)."""
    import upscalers
    from macs import complexity_of

    limit_threads()
    rows = rows if rows is not None else discover_rows()
    results = []
    for row in rows:
        if only and row.key not in only:
            continue
        entry = row.to_dict()
        if not row.ok:
            results.append(entry)
            print("quality: %-20s %s" % (row.key, row.status), flush=True)
            continue
        t0 = time.perf_counter()
        try:
            entry.update(evaluate_row(row, upscalers.upscaler(row), quick=quick))
            if row.kind == "opencv":  # the same network fed MATLAB Y instead of OpenCV's full-range Y
                net = evaluate_row(row, upscalers.OpenCvFsrcnn(row.path, name=row.key + "-net"), sets=("Set5",), quick=quick)
                entry["set5_net_matlab_y"] = {"psnr": net["set5"]["psnr"], "ssim": net["set5"]["ssim"]}
            entry["complexity"] = complexity_of(row, upscalers.onnx_path(row))
            entry["manifest_recorded"] = _manifest_recorded(row)
        except Exception as exc:  # one broken artifact must not sink the table: record why
            entry["status"] = "error: %s: %s" % (type(exc).__name__, exc)
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        results.append(entry)
        s5 = entry.get("set5", {}).get("psnr")
        s14 = entry.get("set14", {}).get("psnr")
        print("quality: %-20s Set5 %s  Set14 %s  (%.0f s) %s" % (
            row.key, "%.2f" % s5 if s5 else "-", "%.2f" % s14 if s14 else "-", entry["seconds"],
            "" if entry["status"] == "ok" else entry["status"]), flush=True)
    out = {"quick": quick, "scale": SCALE, "rows": results, "machine": machine()}
    if merge:
        old = read_json(results_dir(quick) / "quality.json", {}) or {}
        fresh = {r["key"]: r for r in results}
        kept = [dict(r, measured_earlier=old.get("machine", {}).get("time")) for r in old.get("rows", [])
                if r["key"] not in fresh]
        order = [r.key for r in (rows or discover_rows())]
        merged = sorted(kept + results, key=lambda r: order.index(r["key"]) if r["key"] in order else len(order))
        out = {"quick": quick, "scale": SCALE, "rows": merged, "machine": machine(),
               "merged": {"measured_now": sorted(fresh), "kept_from": old.get("machine", {}).get("time")}}
        write_json(results_dir(quick) / "quality.json", out)
    elif not only:
        write_json(results_dir(quick) / "quality.json", out)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one image per set (development only; not the table)")
    p.add_argument("--rows", default="", help="comma-separated row keys (default: all); results not saved")
    args = p.parse_args(argv)
    res = run(quick=args.quick, only=[r for r in args.rows.split(",") if r] or None)
    return 0 if all(not r["status"].startswith("error") for r in res["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
