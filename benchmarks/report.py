"""Write `benchmarks/RESULTS.md` from the JSON results of one suite run (no number is typed by hand).

Published figures appear only in their own labelled column, with their source. Rows whose artifact
does not exist yet are listed as "not yet produced" with the place that was searched.

    python benchmarks/report.py [--quick]
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List, Optional

from common import HERE, REPO, read_json, results_dir
from kdedge.common import sha256_file

PUBLISHED_SOURCE = ("published Y-PSNR as listed in ../shared/weights/README.md (bicubic: the standard table; "
                    "FSRCNN: Dong et al. ECCV 2016, the paper's network, not OpenCV's .pb; IMDN: Hui et al. 2019; "
                    "RLFN: Kong et al. 2022)")


def _f(x, fmt="%.2f", none="–"):
    return fmt % x if isinstance(x, (int, float)) else none


def _md_table(header: List[str], rows: List[List[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _rel(path: Path, md_dir: Path) -> str:
    return os.path.relpath(str(path), str(md_dir))


def _speed_cell(s: Optional[Dict]) -> str:
    if not s:
        return "–"
    return "%s (%s–%s)" % (_f(s["median"], "%.1f"), _f(s["min"], "%.1f"), _f(s["max"], "%.1f"))


def quality_section(q: Dict) -> str:
    rows = []
    for r in q.get("rows", []):
        c = r.get("complexity") or {}
        ok = "set5" in r
        pub = r.get("published") or {}
        extra = []
        rec = r.get("manifest_recorded") or {}
        if rec:
            extra.append("bundle manifest records %s" % ", ".join("%s %.2f" % kv for kv in sorted(rec.items())))
        if "set5_net_matlab_y" in r:
            extra.append("net fed MATLAB Y: Set5 %.2f" % r["set5_net_matlab_y"]["psnr"])
        if not ok:
            extra.append(r.get("status", ""))
        if r.get("note"):
            extra.append(r["note"])
        rows.append([
            r["label"],
            "%s / %s" % (_f(r.get("set5", {}).get("psnr")), _f(r.get("set5", {}).get("ssim"), "%.4f")) if ok else "–",
            "%s / %s" % (_f(r.get("set14", {}).get("psnr")), _f(r.get("set14", {}).get("ssim"), "%.4f")) if ok else "–",
            _f(r.get("set14_gray_as_rgb", {}).get("psnr")) if ok else "–",
            "%s / %s" % (_f(pub.get("set5")), _f(pub.get("set14"))) if pub else "–",
            "{:,}".format(c["params"]) if "params" in c else "–",
            "{:,.0f}".format(c["macs_per_lr_pixel"]) if "macs_per_lr_pixel" in c else "–",
            "; ".join(e for e in extra if e),
        ])
    head = ["row", "Set5 PSNR / SSIM", "Set14 PSNR / SSIM", "Set14 PSNR (gray-as-rgb)", "published Set5 / Set14",
            "params", "MACs / LR px", "notes"]
    return _md_table(head, rows)


def speed_section(sp: Dict, peak: Dict) -> str:
    pk = (peak or {}).get("peak_gmac_per_s", {})
    sizes = sp.get("sizes", [])
    head = ["row", "runtime"]
    for s in sizes:
        head += ["%s model FPS" % s, "%s end-to-end FPS" % s, "%s pipeline FPS" % s, "%s pipeline FPS, 2 workers" % s]
    head += ["GMAC/s (%s, model)" % (sizes[-1] if sizes else ""), "% of CPU peak"]
    rows = []
    for r in sp.get("rows", []):
        label = r["label"]
        if r.get("sha256") and r.get("path") and os.path.isfile(r["path"]) and sha256_file(r["path"]) != r["sha256"]:
            label += " (timed on an earlier file: re-run the speed step)"
        line = [label, r.get("runtime", "")]
        if not r.get("results"):
            line += ["–"] * (4 * len(sizes)) + ["–", r.get("status", "")]
            rows.append(line)
            continue
        for s in sizes:
            res = r["results"].get(s, {})
            line += [_speed_cell(res.get("model")), _speed_cell(res.get("e2e")), _speed_cell(res.get("pipeline")),
                     _speed_cell(res.get("pipeline2"))]
        last = r["results"].get(sizes[-1], {}).get("model", {}) if sizes else {}
        g = last.get("gmac_per_s")
        frac = ""
        if g and pk and r.get("kind") != "bicubic":
            from peak import fraction_of_peak, precision_of

            prec = precision_of(r)
            frac = "%.1f%% of %s" % (100 * fraction_of_peak(g, pk, prec), "INT8" if prec == "int8" else "FP32")
        line += [_f(g, "%.1f"), frac]
        rows.append(line)
    table = _md_table(head, rows)
    return "Timed %s.\n\n%s" % (sp["measured_at"], table) if sp.get("measured_at") else table


def verdict_section(q: Dict, sp: Dict) -> str:
    """kdedge INT8 against OpenCV FSRCNN on both axes, and the 30 FPS aim, computed from the tables."""
    qr = {r["key"]: r for r in q.get("rows", [])}
    sr = {r["key"]: r for r in sp.get("rows", [])}
    lines = []
    for k in ("kdedge-int8", "kdedge-int8-u8s8", "kdedge-fp32", "kdedge-ov-bf16", "kdedge-ov-int8-u8s8", "kdedge-fast-int8",
              "kdedge-fast-fp32", "kdedge-fast-ov-bf16", "kdedge-fast-ov-int8-u8s8"):
        a, b = qr.get(k, {}), qr.get("fsrcnn", {})
        if k.startswith("kdedge-fast") and not a:
            continue  # no fast student shipped
        if "set5" not in a or "set5" not in b:
            lines.append("- %s vs OpenCV FSRCNN: not comparable yet (%s)." % (k, a.get("status") or "no row"))
            continue
        d5 = a["set5"]["psnr"] - b["set5"]["psnr"]
        d14 = a["set14"]["psnr"] - b["set14"]["psnr"]
        parts = ["PSNR %+.2f dB on Set5, %+.2f dB on Set14" % (d5, d14)]
        for size in sp.get("sizes", []):
            fa = sr.get(k, {}).get("results", {}).get(size, {}).get("e2e", {}).get("median")
            fb = sr.get("fsrcnn", {}).get("results", {}).get(size, {}).get("e2e", {}).get("median")
            if fa and fb:
                parts.append("end-to-end %.1f vs %.1f FPS at %s (x%.1f)" % (fa, fb, size, fa / fb))
        lines.append("- **%s vs OpenCV FSRCNN**: %s." % (k, "; ".join(parts)))
        for size in sp.get("sizes", []):
            res = sr.get(k, {}).get("results", {}).get(size, {})
            fa = res.get("e2e", {}).get("median")
            fp = max(res.get("pipeline", {}).get("median") or 0, res.get("pipeline2", {}).get("median") or 0) or None
            if fa:
                h, w = (int(v) for v in size.split("x"))
                best = max(fa, fp or 0)
                lines.append("  - %s LR -> %dx%d output on 2 cores: %.1f FPS end-to-end serial%s: %s 30 FPS."
                             % (size, 2 * h, 2 * w, fa,
                                ", %.1f FPS in the threaded camera pipeline (best of 1 and 2 workers)" % fp if fp else "",
                                "meets" if best >= 30 else "**misses**"))
    return "\n".join(lines)


def jetson_section(j: Dict) -> str:
    if not j.get("rows"):
        return "_not computed (needs quality.json with complexities)_"
    a = j["assumptions"]
    lines = ["Assumptions: %d FPS; %.0f%% of the dense INT8 rate achieved; %d ops per MAC; INT8 activations "
             "(1 byte), every conv reads its input and writes its output once; %.0f%% of peak memory bandwidth "
             "usable; not counted: %s." % (a["fps"], 100 * a["utilisation_of_dense_int8"], a["ops_per_mac"],
                                          100 * a["bandwidth_efficiency"], a["not_counted"]), ""]
    for name, d in a["devices"].items():
        lines.append("- %s: %s." % (name, d["source"]))
    lines.append("")
    devs = list(a["devices"])
    head = ["row", "MACs / LR px", "bytes / LR px"] + ["%s: est. FPS at %s" % (d.split()[-2] + " " + d.split()[-1], s)
                                                      for d in devs for s in ("540x960", "1080x1920")] + \
           ["largest LR size at 30 FPS (%s)" % d.replace("Jetson ", "") for d in devs]
    rows = []
    for r in j["rows"]:
        line = [r["label"], "{:,.0f}".format(r["macs_per_lr_pixel"]), "{:,.0f}".format(r["bytes_per_lr_pixel_int8"])]
        for d in devs:
            for s in ("540x960", "1080x1920"):
                e = r["devices"][d]["sizes"][s]
                line.append("%.0f (%s)" % (e["fps"], e["bound"]))
        line += [r["devices"][d]["largest_at_30fps"] for d in devs]
        rows.append(line)
    return "\n".join(lines) + "\n" + _md_table(head, rows)


def video_section(v: Dict) -> str:
    rows = []
    for r in v.get("rows", []):
        if "mean_psnr" in r:
            mr = sum(r["motion_ratio"]) / len(r["motion_ratio"])
            rows.append([r["label"], "%.2f" % r["mean_psnr"], "%.2f" % min(r["psnr"]), "%.3f" % r["mean_flicker"], "%.3f" % mr])
        else:
            rows.append([r["label"], "–", "–", "–", r.get("status", "")])
    return _md_table(["row", "mean Y-PSNR (dB)", "worst frame (dB)", "mean flicker (Y levels)",
                      "mean motion ratio (mean abs dSR / mean abs dGT)"], rows)


def machine_section(m: Dict) -> str:
    keys = ("cpu", "cpus", "threads_used", "isa", "mem_gib", "platform", "python", "numpy", "onnx", "onnxruntime", "cv2",
            "opencv_contrib_dnn_superres", "torch", "git_commit", "git_dirty")
    return "\n".join("- %s: %s" % (k, m.get(k)) for k in keys if k in m)


def write(quick: bool = False, run_info: Optional[Dict] = None, folder: Optional[Path] = None) -> Path:
    """RESULTS.md from the JSON files of `folder` (default: results/, or results/quick/ with `quick`),
    written beside them, or in benchmarks/ for the real tables."""
    md_dir = Path(folder) if folder else (HERE if not quick else results_dir(quick))
    folder = Path(folder) if folder else results_dir(quick)
    q = read_json(folder / "quality.json", {}) or {}
    sp = read_json(folder / "speed.json", {}) or {}
    pk = read_json(folder / "peak.json", {}) or {}
    j = read_json(folder / "jetson_estimate.json", {}) or {}
    v = read_json(folder / "video.json", {}) or {}
    info = run_info or read_json(folder / "run.json", {}) or {}
    m = sp.get("machine") or q.get("machine") or {}
    parts = ["# kdedge benchmarks: quality and speed against bicubic, OpenCV's FSRCNN and the published teachers", ""]
    parts.append("_Generated by `benchmarks/report.py` from the JSON files in `%s`; do not edit by hand._"
                 % _rel(folder, REPO))
    parts.append("")
    if info:
        parts.append("- Command: `%s`" % info.get("command", ""))
        parts.append("- Started %s, took %.1f min; steps: %s." % (
            info.get("started", "?"), info.get("seconds", 0) / 60.0,
            ", ".join("%s %.0f s%s" % (s["name"], s["seconds"], "" if s["ok"] else " (FAILED: %s)" % s.get("error", ""))
                      for s in info.get("steps", []))))
        parts.append("- Load average before / after: %s / %s." % (info.get("loadavg_before"), info.get("loadavg_after")))
    if info.get("contended") or quick:
        parts.append("")
        parts.append("> **%s** %s" % ("Development (--quick) run: reduced sets and repetitions, not the tables."
                                      if quick else "Contended run:", info.get("contended_reason", "")))
    parts += ["", "## Machine", "", machine_section(m), ""]
    if q.get("rows"):
        parts += ["## Rows and the artifacts they were measured from", ""]
        for r in q["rows"]:
            path = r.get("path")
            shown = os.path.relpath(path, str(REPO)) if path and not os.path.relpath(path, str(REPO)).startswith("../..") else path
            parts.append("- `%s`: %s; %s%s" % (r["key"], "`%s`" % shown if shown else "no file",
                                               r.get("status", ""), ("; " + r["note"]) if r.get("note") else ""))
        parts += ["", "Only x2 is benchmarked: kdedge ships no x3/x4 student yet.", ""]

    parts += ["## Quality (x2, standard protocol)", "",
              "LR = MATLAB bicubic of the mod-cropped HR; SR rounded to uint8; PSNR/SSIM on MATLAB Y with 2 pixels "
              "shaved (`kdedge.evaluate.evaluate`, one function for every row). Set14 `bridge` (grayscale) is scored "
              "as Y (gray-as-y, the published bicubic convention); the column 'gray-as-rgb' is BasicSR's convention "
              "that the IMDN/RLFN papers use. The published column is %s. Teachers are run in torch (their published "
              "weights, loaded strictly by kdedge's architecture code); OpenCV FSRCNN is `dnn_superres.upsample()`." % PUBLISHED_SOURCE,
              "", quality_section(q), ""]
    teach = [r for r in q.get("rows", []) if r.get("group") == "teacher" and "set5" in r]
    if teach:
        parts += ["Teachers unrounded (published in brackets): %s. Set5 LR here is kdedge's Python MATLAB-imresize; "
                  "its pixels differ from MATLAB's own files (IMDN's Set5_LR) by at most 2 levels; checked once during "
                  "development, IMDN scored 37.996 on MATLAB's files against 37.995 on ours."
                  % "; ".join("%s Set5 %.3f (%s), Set14 gray-as-rgb %.3f (%s)" % (
                      r["key"], r["set5"]["psnr"], _f((r.get("published") or {}).get("set5")),
                      r.get("set14_gray_as_rgb", {}).get("psnr", float("nan")), _f((r.get("published") or {}).get("set14")))
                      for r in teach), ""]
    parts += ["MACs per LR pixel: counted from the ONNX graph that runs (every Conv/Gemm/MatMul; output shapes "
              "observed by ORT on a 128x128 input; parameters traced through DequantizeLinear) for ONNX and torch "
              "rows (torch rows through kdedge's exporter); from the conv weights OpenCV loads for the FSRCNN .pb "
              "(all convs at LR resolution; equal to the architecture formula 25d + ds + 9ms^2 + sd + 4d); "
              "bicubic as a separable 4-tap filter on RGB. See `kdedge/export/macs.py` (ONNX) and `benchmarks/macs.py`.", ""]
    if sp:
        parts += ["## Speed (this CPU, %d threads)" % sp.get("threads", 2), "",
                  "Median FPS over %d interleaved rounds after %d warm-up runs (min–max in brackets); each round "
                  "times a block of frames lasting about %.1f s. Model-only = the network on a tensor in memory; "
                  "end-to-end = BGR uint8 LR frame in, BGR uint8 SR frame out, one frame after another on one "
                  "thread (`kdedge.runtime.pipeline.SRProcessor.process`: MATLAB-Y split, network, bicubic chroma, "
                  "merge; FSRCNN: `dnn_superres.upsample`; bicubic: `cv2.resize`); pipeline (bundle rows) = the "
                  "threaded camera pipeline of `kdedge bench` (test pattern source, null sink), what a camera user "
                  "gets: one SR thread with a 2-thread session, or 2 workers (`--workers 2`: two SR threads with a "
                  "1-thread session each, frames in parallel). Teachers take RGB at the same size. "
                  "ONNX rows run on ONNX Runtime CPU through `kdedge.runtime`'s ORT backend; FSRCNN on OpenCV dnn."
                  % (sp.get("reps", 0), sp.get("warmup", 0), sp.get("block_seconds", 0)), "",
                  speed_section(sp, pk), ""]
    if pk:
        p = pk["peak_gmac_per_s"]
        parts += ["## The limit: this CPU's peak MAC rate through ONNX Runtime", "",
                  "Workload: %s, quantized with ORT's `quantize_static` (QDQ, per-channel symmetric weights). Best "
                  "median over widths: **FP32 %.0f GMAC/s, INT8 QDQ S8S8 %.0f GMAC/s, INT8 QDQ U8S8 %.0f GMAC/s**. "
                  "'%% of CPU peak' in the speed table is each row's achieved rate (MACs/LR px x pixels x model-only "
                  "FPS at the largest size) over the FP32 peak, or over the best INT8 peak for INT8 rows (OpenCV dnn "
                  "FSRCNN is compared with ORT's FP32 peak)." % (pk["workload"], p["fp32"], p["int8_s8s8"], p["int8_u8s8"]), ""]
        parts += [_md_table(["precision", "channels", "GMAC/s (median)", "min–max"],
                            [[r["precision"], str(r["channels"]), "%.1f" % r["gmac_per_s"], "%.1f–%.1f" % (r["min"], r["max"])]
                             for r in pk.get("measurements", [])]), ""]
    parts += ["## kdedge against OpenCV's FSRCNN (computed from the tables above)", "", verdict_section(q, sp), ""]
    parts += ["## On paper: Jetson Orin Nano 8GB / Orin NX 16GB at 30 FPS", "",
              "Arithmetic, not a measurement (`benchmarks/jetson_estimate.py`): nothing here ran on a Jetson.", "",
              jetson_section(j), ""]
    if v:
        parts += ["## Video: Vid4 calendar (%d frames, x2 from MATLAB-bicubic LR)" % v.get("frames", 0), "",
                  "Flicker(t) = mean |(SR_t - SR_{t-1}) - (GT_t - GT_{t-1})| on Y (0 = the output changes exactly as "
                  "the truth does; on this panning clip it also carries each method's spatial error as it moves). "
                  "Motion ratio > 1: the output changes more than the truth between frames (shimmer); < 1: less "
                  "(temporal smoothing).", "", video_section(v), ""]
    pics = [("psnr_vs_fps_540x960.png", "PSNR vs end-to-end FPS at 540x960 LR (Pareto front dashed, kdedge = red stars)"),
            ("psnr_vs_fps_270x480.png", "PSNR vs end-to-end FPS at 270x480 LR"),
            ("crops_set14.png", "Set14 crop grid"), ("crops_calendar.png", "calendar crop grid"),
            ("video_psnr.png", "calendar per-frame Y-PSNR"), ("video_flicker.png", "calendar temporal flicker")]
    made = set(info.get("pictures", [])) if info else None
    shown = [(f, t) for f, t in pics if (folder / f).is_file() and (made is None or not made or f in made)]
    if shown:
        parts += ["## Pictures", ""]
        for f, t in shown:
            parts += ["**%s**" % t, "", "![%s](%s)" % (t, _rel(folder / f, md_dir)), ""]
    parts += ["## Reproduce", "", "```",
              "python3 -m venv /work/venv-bench",
              "/work/venv-bench/bin/pip install torch==2.13.0",
              "/work/venv-bench/bin/pip install -r benchmarks/requirements.txt",
              "/work/venv-bench/bin/pip install -e . --no-deps",
              "/work/venv-bench/bin/python benchmarks/run_all.py        # the whole suite, < 30 min on 2 cores",
              "```", "",
              "Rows are discovered, not configured: the default bundle `kdedge/assets/default_x2/` (FP32, INT8 and any "
              "extra precisions in its manifest), a `*naive*.onnx` beside it or under `runs/` / `benchmarks/results/` "
              "(else built from the bundle's FP32), the default student's twin (a checkpoint under `runs/`, "
              "`benchmarks/results/` or `kdedge/assets/` whose header says: same architecture, the other teacher status "
              "(no teacher for a distilled default, a teacher for a teacher-less one), same steps, data, seed and "
              "recycling), and the speed-first bundle `kdedge/assets/fast_x2/` when shipped; "
              "`KDEDGE_BENCH_BUNDLE` / `KDEDGE_BENCH_TWIN` / `KDEDGE_BENCH_FAST_BUNDLE` override them. Shared data and "
              "weights come from `../shared` (`KDEDGE_SHARED`).", ""]
    out = md_dir / "RESULTS.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(parts))
    os.replace(tmp, out)
    return out


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="report on the --quick development results")
    p.add_argument("--results", default=None, metavar="DIR", help="report on the JSON files in DIR, into DIR/RESULTS.md")
    args = p.parse_args(argv)
    print(write(quick=args.quick, folder=args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
