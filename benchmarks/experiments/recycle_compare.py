"""Dead-channel recycling against the same run without it: validation curves, dead channels at the end.

    python benchmarks/experiments/recycle_compare.py \
        --pair distilled=runs/long16x5/distilled,runs/redo16x5/distilled \
        --pair twin=runs/long16x5/twin,runs/redo16x5/twin --out-name recycle_16x5

Each pair is a run without `--recycle-interval` and one with it, same recipe and seed: their training
draws are the same patches (the recycling check samples from its own generator), so the curves differ
by the recycling alone. Validation = the runs' own held-out training images (`--val-holdout`), never a
test set. Dead channels are counted as `dead_channels.py` does (24 training images). Writes
experiments/results/<out-name>.{json,md,png}.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _curve(run: Path) -> dict:
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {int(r["step"]): float(r["val_psnr"]) for r in rows if r.get("val_psnr")}


def _recycle_log(run: Path) -> list:
    """(step, channels re-initialised) from the run's log next to its folder, when there is one."""
    log = run.parent / (run.name + ".log")
    if not log.is_file():
        return []
    out = []
    for line in log.read_text().splitlines():
        hit = re.match(r"step (\d+): re-initialised dead ReLU channels (.*)", line)
        if hit:
            out.append((int(hit.group(1)), sum(len(c.split(",")) for c in re.findall(r"\[([^\]]*)\]", hit.group(2)))))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", action="append", required=True, metavar="NAME=CONTROL,RECYCLED")
    ap.add_argument("--out-name", default="recycle")
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dead_channels import count_dead

    pairs = {}
    for spec in args.pair:
        name, runs = spec.split("=", 1)
        control, recycled = (Path(r) for r in runs.split(","))
        a, b = _curve(control), _curve(recycled)
        steps = sorted(set(a) & set(b))
        pairs[name] = {"control": str(control), "recycled": str(recycled), "steps": steps,
                       "val_control": [a[s] for s in steps], "val_recycled": [b[s] for s in steps],
                       "dead_control": count_dead(str(control / "last.safetensors")),
                       "dead_recycled": count_dead(str(recycled / "last.safetensors")),
                       "recycled_per_check": _recycle_log(recycled)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / (args.out_name + ".json")).write_text(json.dumps(pairs, indent=1) + "\n")

    fig, axes = plt.subplots(1, len(pairs), figsize=(6 * len(pairs), 4), squeeze=False)
    for ax, (name, p) in zip(axes[0], pairs.items()):
        ax.plot(p["steps"], p["val_control"], "o-", label="without recycling (%d dead at the end)" % p["dead_control"]["dead"])
        ax.plot(p["steps"], p["val_recycled"], "o-", label="--recycle-interval (%d dead at the end)" % p["dead_recycled"]["dead"])
        ax.set(title=name, xlabel="step", ylabel="validation Y-PSNR (dB)", ylim=(min(p["val_control"][1:] + p["val_recycled"][1:]) - 0.02, None))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / (args.out_name + ".png"), dpi=90)

    lines = ["Command: `python benchmarks/experiments/recycle_compare.py %s`" % " ".join("--pair " + p for p in args.pair), "",
             "Validation Y-PSNR (the runs' held-out training images) at each evaluation; dead = ReLU channels never",
             "positive on 24 training images in the last checkpoint (`dead_channels.py`). Curves: `%s.png`." % args.out_name, ""]
    for name, p in pairs.items():
        lines += ["## %s" % name, "", "| step | without | recycled | difference |", "|---|---|---|---|"]
        lines += ["| %d | %.3f | %.3f | %+.3f |" % (s, a, b, b - a) for s, a, b in zip(p["steps"], p["val_control"], p["val_recycled"])]
        half = len(p["steps"]) // 2
        mean = sum(b - a for a, b in zip(p["val_control"][half:], p["val_recycled"][half:])) / (len(p["steps"]) - half)
        rec = p["recycled_per_check"]
        lines += ["", "Mean difference over the second half of the evaluations: %+.3f dB. Dead channels at the end: %d "
                  "without, %d with (per activation: %s / %s). Channels re-initialised per check: %s."
                  % (mean, p["dead_control"]["dead"], p["dead_recycled"]["dead"],
                     " ".join(map(str, p["dead_control"]["dead_per_activation"])),
                     " ".join(map(str, p["dead_recycled"]["dead_per_activation"])),
                     ", ".join("%d at %d" % (n, s) for s, n in rec) if rec else "-"), ""]
    (RESULTS / (args.out_name + ".md")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
