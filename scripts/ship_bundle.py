"""Ship a trained student inside the package: kdedge/assets/<name>_x2/, the bundle the runtime loads by name.

    python scripts/ship_bundle.py runs/distill_imdn60/distilled/last.safetensors --name default
    python scripts/ship_bundle.py runs/fast/distilled/last.safetensors --name fast

Runs the product's own export (`kdedge export --int8 --u8s8 --fp16`, Set5 and Set14 rows in the
manifest) into a temporary folder and swaps it in only when the export succeeded, so a failed
export never leaves a half-replaced bundle. `--name default` also ships the checkpoint's
deployable part (weights + header, no optimiser state) as kdedge/assets/student_x2.safetensors:
the benchmark suite finds the default student's twin by comparing checkpoint headers with it.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from distill_assets import ASSETS, SHARED, ship


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="kdedge checkpoint (.safetensors) of the student")
    ap.add_argument("--name", required=True, choices=("default", "fast"), help="bundle to replace")
    ap.add_argument("--note", default="", help="provenance line stored in the shipped checkpoint header")
    args = ap.parse_args(argv)

    target = ASSETS / ("%s_x2" % args.name)
    with tempfile.TemporaryDirectory(dir=str(ASSETS.parent.parent)) as tmp:
        staged = Path(tmp) / target.name
        cmd = [sys.executable, "-m", "kdedge", "export", args.checkpoint, "--int8", "--u8s8", "--fp16",
               "--name", "kdedge-%s-x2" % args.name, "--out", str(staged),
               "--report", str(SHARED / "data" / "test" / "Set5"), "--report", str(SHARED / "data" / "test" / "Set14")]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        old = target.with_name(target.name + ".old")
        if target.exists():
            target.rename(old)
        shutil.move(str(staged), str(target))
        shutil.rmtree(str(old), ignore_errors=True)
    from kdedge.checkpoint import read_header

    if args.name == "default" and "qat" in read_header(args.checkpoint):
        # a `kdedge qat` fine-tune starts from student_x2.safetensors: that stays the default's training
        # record (the suite finds the twin by its header); the bundle's manifest names the QAT source
        print("kept kdedge/assets/student_x2.safetensors: %s is its QAT fine-tune" % args.checkpoint)
    elif args.name == "default":
        ship(Path(args.checkpoint), ASSETS / "student_x2.safetensors",
             args.note or "kdedge's default x2 Y student (see kdedge/assets/default_x2/manifest.json)")
    print("shipped", target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
