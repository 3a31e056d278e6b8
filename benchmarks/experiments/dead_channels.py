"""How many ReLU channels of trained students never fire: the capacity `--recycle-interval` wins back.

    python benchmarks/experiments/dead_channels.py runs/long16x5/distilled/last.safetensors ...

A channel counts as dead when its ReLU output is never positive on 24 whole training images (every 12th
image of T91 + BSD200 in the trainer's order, the Y channel of their bicubic LR), in the fused network
the bundle exports. Writes experiments/results/dead_channels.{json,md} (--out-name).
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
RESULTS = Path(__file__).resolve().parent / "results"


@functools.lru_cache(maxsize=1)
def probe_images():
    """(name, 1x1xhxw LR Y tensor) of the 24 training images every count uses (loaded once)."""
    import torch

    from kdedge.distill.config import TrainConfig
    from kdedge.distill.data import make_sample
    from kdedge.distill.inputs import load_images

    train, _ = load_images(TrainConfig(data=[str(SHARED / "data" / "train" / d) for d in ("T91", "BSD200")], val_holdout=8))
    return tuple((im.name, torch.from_numpy(make_sample(im, 2, "y").lr.copy())[None].float()) for im in train[::12][:24])


def count_dead(spec: str) -> dict:
    """{"dead_per_activation", "dead", "channels"} of the fused student in checkpoint or bundle `spec`."""
    from kdedge.distill.qat import _plain_anchor, load_student
    from kdedge.distill.recycle import dead_channels

    net = _plain_anchor(load_student(spec).module).eval()
    dead = dead_channels(net, [x for _, x in probe_images()])
    per_layer = [len(dead.get(k, [])) for k in range(len(net.body) // 2)]
    return {"dead_per_activation": per_layer, "dead": sum(per_layer), "channels": net.tail.in_channels * len(per_layer)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="checkpoints or bundle folders of anchor-family students")
    ap.add_argument("--out-name", default="dead_channels")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    rows = {}
    for spec in args.checkpoints:
        rows[spec] = count_dead(spec)
        print(spec, rows[spec], flush=True)
    images = [n for n, _ in probe_images()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / (args.out_name + ".json")).write_text(json.dumps({"images": images, "rows": rows}, indent=1) + "\n")
    lines = ["Command: `python benchmarks/experiments/dead_channels.py %s`" % " ".join(args.checkpoints), "",
             "ReLU channels never positive on 24 training images (%s, ...), per activation (body.1, body.3, ...)."
             % ", ".join(images[:3]), "",
             "| student | dead per activation | dead / all |", "|---|---|---|"]
    lines += ["| `%s` | %s | %d / %d |" % (k, " ".join(map(str, r["dead_per_activation"])), r["dead"], r["channels"]) for k, r in rows.items()]
    (RESULTS / (args.out_name + ".md")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
