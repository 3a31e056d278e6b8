"""Two-process torchrun (gloo on the CPU) trains and writes the ordinary checkpoint format."""
from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from test_train_utils import make_images  # noqa: E402
from kdedge.checkpoint import load_checkpoint, read_header  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path):
    if not torch.distributed.is_available():
        pytest.skip("this torch build has no torch.distributed")
    data = make_images(tmp_path / "data", n=4, size=32)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           "--master_port=%d" % _free_port(), "-m", "kdedge", "train", "--data", str(data), "--student", "repanchor",
           "--width", "4", "--depth", "1", "--branches", "conv3x3,conv1x1,identity", "--patch", "8", "--batch", "4",
           "--steps", "4", "--eval-interval", "2", "--log-interval", "1", "--val-holdout", "1", "--threads", "1",
           "--no-progress", "--out", str(run)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    header = read_header(run / "last.safetensors")
    assert header["step"] == 4 and header["arch"] == "repanchor" and "train_state" in header
    assert header["world_size"] == 2
    model = load_checkpoint(run / "best.safetensors")
    assert model.scale == 2 and model.color == "y"
    # Only rank 0 writes: one metrics row per step, no duplicates.
    steps = [int(r["step"]) for r in csv.DictReader(open(run / "metrics.csv"))]
    assert steps == [1, 2, 3, 4]
    assert out.stdout.count("done:") == 1  # rank 0 reports, rank 1 stays quiet
