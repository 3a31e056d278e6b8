"""Ship a trained student inside the package: kdedge/assets/<name>_x2/, the bundle the runtime loads by name.

    python scripts/ship_bundle.py runs/distill_imdn60/distilled/last.safetensors --name default
    python scripts/ship_bundle.py runs/fast/distilled/last.safetensors --name fast

Runs the product's own export (`kdedge export --int8 --u8s8 --fp16`, Set5 and Set14 rows in the
manifest) into a temporary folder and swaps it in only when the export succeeded, so a failed
export never leaves a half-replaced bundle. `--name default` also ships the checkpoint's
deployable part (weights + header, no optimiser state) as kdedge/assets/student_x2.safetensors (for a
`kdedge qat` checkpoint, the checkpoint its fine-tune started from: its header's qat.source): the
benchmark suite finds the default student's twin by comparing checkpoint headers with it.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from distill_assets import ASSETS, SHARED, ship


def default_student_source(checkpoint: str, student: str = "") -> Path:
    """The checkpoint shipped as kdedge/assets/student_x2.safetensors, the default's training record (the
    suite finds its twin by that header): `student` if given, else for a `kdedge qat` fine-tune the
    checkpoint it started from. Checked before anything is replaced."""
    from kdedge.checkpoint import read_header

    qat = read_header(checkpoint).get("qat")
    source = Path(student or (qat["source"] if qat else checkpoint))
    if not source.is_file():
        raise SystemExit("%s: the default's training checkpoint %s is not a file, so kdedge/assets/student_x2.safetensors "
                         "cannot be shipped with it; nothing was replaced. Give the checkpoint the student was trained "
                         "into with --student" % (checkpoint, source))
    return source


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="kdedge checkpoint (.safetensors) of the student")
    ap.add_argument("--name", required=True, choices=("default", "fast"), help="bundle to replace")
    ap.add_argument("--note", default="", help="provenance line stored in the shipped checkpoint header")
    ap.add_argument("--student", default="", help="with --name default: the training checkpoint shipped as "
                    "student_x2.safetensors (default: CHECKPOINT, or the checkpoint a `kdedge qat` fine-tune started from)")
    args = ap.parse_args(argv)

    source = default_student_source(args.checkpoint, args.student) if args.name == "default" else None
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
    if source is not None:
        ship(source, ASSETS / "student_x2.safetensors",
             args.note or "kdedge's default x2 Y student (see kdedge/assets/default_x2/manifest.json)")
        print("shipped %s as kdedge/assets/student_x2.safetensors" % source)
    print("shipped", target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
