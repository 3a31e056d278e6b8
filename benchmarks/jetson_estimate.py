"""On paper: which LR input sizes each model can hold at 30 FPS on a Jetson Orin Nano 8GB / Orin NX 16GB.

Nothing here runs on a Jetson; it is arithmetic on the MACs and activation traffic counted from each
model's ONNX graph (`macs.py`) and NVIDIA's published figures, under assumptions stated in the output:
- Published INT8 throughput (NVIDIA Jetson Orin Nano Series Data Sheet DS-11105-001 and Jetson Orin NX
  Series Data Sheet DS-10712-001; JetPack 5.1 / 6.0 clocks): Orin Nano 8GB 40 sparse = 20 dense INT8
  TOPS (GPU only), Orin NX 16GB 100 sparse = 50 dense INT8 TOPS (GPU + two DLAs). A convolution net
  without 2:4 structured sparsity gets the dense figure at best; 1 MAC = 2 operations.
  (JetPack 6.2's "Super" mode raises them to 67 and 157 sparse TOPS; not used here.)
- Utilisation: small-channel SR convs (16-56 channels, 1-channel input) keep a GPU's tensor cores far
  from busy; we assume UTILISATION = 20% of dense INT8 throughput is achieved (TensorRT, INT8, fused
  conv+activation). For scale: on this CPU the same models reach the fraction of ORT's peak shown in
  the speed table of RESULTS.md, usually far below 100% for the same reason.
- Memory: LPDDR5 68 GB/s (Orin Nano 8GB) and 102.4 GB/s (Orin NX 16GB), of which BANDWIDTH_EFFICIENCY
  = 60% is usable; every conv reads its input and writes its output once in INT8 (1 byte per element,
  no inter-layer fusion): bytes per LR pixel = the graph's conv input + output elements.
A size "holds" 30 FPS when both the compute time and the memory time of a frame fit in 1/30 s (the
larger of the two is the estimate; camera capture, colour conversion and display are not counted).

    python benchmarks/jetson_estimate.py
"""
from __future__ import annotations

import sys
from typing import Dict, List

from common import read_json, results_dir, write_json

FPS = 30.0
UTILISATION = 0.20
BANDWIDTH_EFFICIENCY = 0.60
DEVICES = {
    "Jetson Orin Nano 8GB": {"int8_tops_sparse": 40.0, "int8_tops_dense": 20.0, "mem_gb_s": 68.0,
                             "source": "NVIDIA Jetson Orin Nano Series Data Sheet (DS-11105-001): up to 40 sparse / 20 dense INT8 TOPS, 68 GB/s"},
    "Jetson Orin NX 16GB": {"int8_tops_sparse": 100.0, "int8_tops_dense": 50.0, "mem_gb_s": 102.4,
                            "source": "NVIDIA Jetson Orin NX Series Data Sheet (DS-10712-001): up to 100 sparse / 50 dense INT8 TOPS (GPU + 2 DLA), 102.4 GB/s"},
}
SIZES = ((270, 480), (360, 640), (540, 960), (720, 1280), (1080, 1920))


def estimated_fps(macs_per_px: float, bytes_per_px: float, h: int, w: int, device: Dict) -> Dict[str, float]:
    """Frame time = max(compute time, memory time) under the module's assumptions."""
    px = h * w
    mac_rate = device["int8_tops_dense"] * 1e12 / 2.0 * UTILISATION
    byte_rate = device["mem_gb_s"] * 1e9 * BANDWIDTH_EFFICIENCY
    t_compute = macs_per_px * px / mac_rate
    t_memory = bytes_per_px * px / byte_rate
    t = max(t_compute, t_memory)
    return {"fps": 1.0 / t if t > 0 else float("inf"), "bound": "compute" if t_compute >= t_memory else "memory",
            "gmac_per_frame": macs_per_px * px / 1e9}


def largest_real_time(macs_per_px: float, bytes_per_px: float, device: Dict) -> str:
    ok = [(h, w) for h, w in SIZES if estimated_fps(macs_per_px, bytes_per_px, h, w, device)["fps"] >= FPS]
    return "%dx%d" % ok[-1] if ok else "none of %dx%d..%dx%d" % (SIZES[0] + SIZES[-1])


def run(quick: bool = False) -> Dict:
    quality = read_json(results_dir(quick) / "quality.json", {}) or {}
    rows: List[Dict] = []
    for r in quality.get("rows", []):
        c = r.get("complexity") or {}
        if r.get("kind") == "bicubic" or not c.get("macs_per_lr_pixel"):
            continue
        # one line per network: every kdedge precision and the twin share kdedge-int8's architecture
        if r["key"] in ("kdedge-fp32", "kdedge-int8-u8s8", "kdedge-int8-naive", "kdedge-noteacher",
                        "kdedge-distilled") and \
                any(x["key"] == "kdedge-int8" and (x.get("complexity") or {}).get("macs_per_lr_pixel") for x in quality["rows"]):
            continue
        if r["key"] == "kdedge-fast-fp32" and any(x["key"] == "kdedge-fast-int8" for x in quality["rows"]):
            continue
        macs, io = c["macs_per_lr_pixel"], c.get("conv_io_elements_per_lr_pixel", 0.0)
        entry = {"key": r["key"], "label": r["label"], "macs_per_lr_pixel": macs, "bytes_per_lr_pixel_int8": io,
                 "devices": {}}
        for name, dev in DEVICES.items():
            entry["devices"][name] = {
                "sizes": {"%dx%d" % s: estimated_fps(macs, io, s[0], s[1], dev) for s in SIZES},
                "largest_at_30fps": largest_real_time(macs, io, dev),
            }
        rows.append(entry)
    out = {"assumptions": {"fps": FPS, "utilisation_of_dense_int8": UTILISATION,
                           "bandwidth_efficiency": BANDWIDTH_EFFICIENCY, "ops_per_mac": 2,
                           "bytes_per_activation": 1, "devices": DEVICES,
                           "not_counted": "capture, colour conversion, chroma upscaling, display"},
           "sizes": ["%dx%d" % s for s in SIZES], "rows": rows}
    write_json(results_dir(quick) / "jetson_estimate.json", out)
    return out


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="read and write the --quick development results")
    res = run(quick=p.parse_args(argv).quick)
    for r in res["rows"]:
        print("%-20s %9.0f MAC/px  %s" % (r["key"], r["macs_per_lr_pixel"],
                                         "  ".join("%s: %s" % (d, v["largest_at_30fps"]) for d, v in r["devices"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
