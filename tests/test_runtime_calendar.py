"""Vid4 calendar through the runtime (skips without ../shared): counts, sizes and the Y-PSNR report.

Uses the tiny nearest-neighbour bundle, so only the plumbing is checked here; the quality numbers of
a real bundle come from `python benchmarks/experiments/calendar_x2.py BUNDLE`, which this test runs
end to end on a few frames.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

try:
    from test_runtime_helpers import make_bundle
except ImportError:
    from tests.test_runtime_helpers import make_bundle

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.shared
def test_calendar_x2_plumbing(shared_dir, tmp_path):
    calendar = shared_dir / "data" / "video" / "calendar"
    if not calendar.is_dir():
        pytest.skip("needs ../shared/data/video/calendar")
    out = tmp_path / "calendar_x2.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "experiments" / "calendar_x2.py"), str(make_bundle(tmp_path / "b")),
           "--calendar", str(calendar), "--frames", "4", "--threads", "1", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=str(REPO), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert r["frames"] == 4 and r["png_frames"] == 4 and r["video"]["frames"] == 4
    assert r["video"]["size_hw"] == r["hr_size_hw"] == [576, 720]
    ys = r["y_psnr"]
    # nearest-neighbour (the tiny model) must lose to MATLAB bicubic on real frames, and all are sane
    assert 15 < ys["sr"] < ys["bicubic_matlab"] < 40
