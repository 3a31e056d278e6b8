"""The one command: every benchmark of kdedge, then `benchmarks/RESULTS.md`. Under 30 minutes on 2 cores.

Steps, in order (each step's failure is recorded in RESULTS.md and the next step still runs):
quality (Set5/Set14 x2, params, MACs) -> peak (CPU MAC ceiling) -> speed (all rows interleaved) ->
jetson_estimate (on paper) -> video (calendar) -> plots -> report. Every output is rewritten
atomically, so re-running is safe and gives a fresh, complete set.

    /work/venv-bench/bin/python benchmarks/run_all.py            # the tables
    /work/venv-bench/bin/python benchmarks/run_all.py --quick    # smoke run into benchmarks/results/quick/
    ... --contended "other jobs were running"                     # label a run taken on a busy machine

Run it in the benchmark environment (benchmarks/requirements.txt): OpenCV's FSRCNN needs
opencv-contrib's dnn_superres, which the dev venv's plain OpenCV lacks (those rows then say so).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

# A 1-minute load average above this before we start means someone else is using the cores.
CONTENDED_LOAD = 0.7


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--quick", action="store_true", help="smoke run: one image per set, few rounds, 4 video frames; "
                                                        "writes benchmarks/results/quick/, never the tables")
    p.add_argument("--reps", type=int, default=7, help="timed rounds per speed measurement (default 7)")
    p.add_argument("--skip", default="", help="comma-separated steps to skip (quality,peak,speed,jetson,video,plots)")
    p.add_argument("--contended", default="", metavar="WHY",
                   help="mark the speed numbers as taken on a busy machine (also set automatically when the load "
                        "average is above %.1f at the start)" % CONTENDED_LOAD)
    p.add_argument("--quality-rows", default="", metavar="KEYS",
                   help="measure quality only for these comma-separated row keys and merge them into the saved "
                        "quality.json (the other rows keep their earlier figures, marked so)")
    args = p.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    quality_rows = [k for k in args.quality_rows.split(",") if k] or None

    import jetson_estimate
    import peak
    import plots
    import quality
    import report
    import speed
    import video

    t_start = time.time()
    load0 = common.load_avg()
    rows = common.discover_rows()
    for r in rows:
        print("row %-20s %s" % (r.key, r.status), flush=True)
    info = {
        "command": " ".join(shlex.quote(a) for a in [sys.executable,
                                                      "benchmarks/run_all.py"] + list(argv if argv is not None else sys.argv[1:])),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
        "loadavg_before": load0, "steps": [], "pictures": [], "quick": args.quick,
    }
    reason = args.contended
    if not reason and load0 and load0[0] > CONTENDED_LOAD:
        reason = "1-minute load average %.2f at the start (other processes were using the 2 cores)" % load0[0]
    info["contended"] = bool(reason)
    info["contended_reason"] = ("Speed numbers were measured while other work shared the CPU: %s. Treat FPS as lower "
                                "bounds and ratios between rows (interleaved rounds) as the meaningful part." % reason) if reason else ""

    steps = [
        ("quality", lambda: quality.run(rows, quick=args.quick, only=quality_rows, merge=bool(quality_rows))),
        ("peak", lambda: peak.run(quick=args.quick)),
        ("speed", lambda: speed.run(rows, quick=args.quick, reps=args.reps)),
        ("jetson", lambda: jetson_estimate.run(quick=args.quick)),
        ("video", lambda: video.run(rows, quick=args.quick)),
        ("plots", lambda: plots.run(rows, quick=args.quick)),
    ]
    ok = True
    for name, fn in steps:
        if name in skip:
            continue
        t0 = time.time()
        print("== %s" % name, flush=True)
        step = {"name": name, "ok": True}
        try:
            res = fn()
            if name == "plots":
                info["pictures"] += [Path(x).name for x in res]
            if name == "video" and isinstance(res, dict):
                info["pictures"] += [Path(x).name for x in res.get("figures", [])]
        except Exception as exc:  # record and go on: a partial table beats none
            traceback.print_exc()
            step.update(ok=False, error="%s: %s" % (type(exc).__name__, exc))
            ok = False
        step["seconds"] = round(time.time() - t0, 1)
        info["steps"].append(step)
    info["seconds"] = round(time.time() - t_start, 1)
    info["loadavg_after"] = common.load_avg()
    common.write_json(common.results_dir(args.quick) / "run.json", info)
    print("wrote %s" % report.write(quick=args.quick, run_info=info))
    print("total %.1f min" % (info["seconds"] / 60.0))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
