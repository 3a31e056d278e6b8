"""`kill -9` during training, then --resume: the run continues from its last checkpoint, and every
checkpoint ever on disk loads (atomic writes: never a truncated file)."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("torch")

from test_train_utils import make_images  # noqa: E402
from kdedge.checkpoint import load_checkpoint, read_header  # noqa: E402


def _cmd(data, run, *extra):
    return [sys.executable, "-m", "kdedge", "distill", "--teacher", "", "--kd-weight", "0", "--no-hr-as-lr",
            "--unlabeled-ratio", "0", "--data", str(data), "--student", "anchor", "--width", "4", "--depth", "1",
            "--patch", "8", "--batch", "2", "--steps", "400", "--eval-interval", "2", "--log-interval", "1",
            "--val-holdout", "1", "--threads", "1", "--no-progress", "--no-plot", "--out", str(run)] + list(extra)


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path):
    data = make_images(tmp_path / "data", n=3, size=32)
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(_cmd(data, run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen_steps, last_step, loads = set(), 0, 0
    deadline = time.time() + 120
    try:
        # Load every checkpoint we can see while the trainer keeps rewriting them.
        while time.time() < deadline and proc.poll() is None:
            for path in run.glob("*.safetensors"):
                model = load_checkpoint(path)  # raises on a truncated file
                seen_steps.add(model.meta["step"])
                if path.name == "last.safetensors":
                    last_step = max(last_step, model.meta["step"])
                loads += 1
            if last_step >= 10:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert loads > 0 and last_step >= 10
    for path in run.glob("*.safetensors"):
        load_checkpoint(path)
    killed_at = read_header(run / "last.safetensors")["step"]
    assert killed_at >= 10 and killed_at % 2 == 0

    # Resume with nothing but the run folder (and a shorter horizon for the test's sake).
    out = subprocess.run([sys.executable, "-m", "kdedge", "distill", "--resume", "--out", str(run), "--stop-at",
                          str(killed_at + 4), "--no-progress"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    header = read_header(run / "last.safetensors")
    assert header["step"] == killed_at + 4
    assert header["config"]["steps"] == 400  # the checkpoint's own config was reused
    steps = [int(r["step"]) for r in csv.DictReader(open(run / "metrics.csv"))]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) and steps[-1] == killed_at + 4
    assert not list(run.glob(".*.tmp"))
    for path in run.glob("*.safetensors"):
        load_checkpoint(path)
