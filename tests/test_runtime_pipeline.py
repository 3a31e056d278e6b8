"""The real-time pipeline and `python -m kdedge.camera` on the synthetic source, videos and folders.

The tiny test model is an exact nearest-neighbour x2 upscaler, so outputs can be predicted from the
inputs without hard-coding numbers.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from kdedge.runtime import colour
from kdedge.runtime.backends import create_backend
from kdedge.runtime.bundle import load_bundle
from kdedge.runtime.pipeline import Pipeline, PipelineOptions, run_pipeline
from kdedge.runtime.processor import SRProcessor
from kdedge.runtime.sinks import open_sink
from kdedge.runtime.sources import open_source

try:
    from test_runtime_helpers import make_bundle
except ImportError:
    from tests.test_runtime_helpers import make_bundle


@pytest.fixture(scope="module")
def bundle_y(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("b") / "y", color="y")


def _count_frames(path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    n, size = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
        size = frame.shape
    cap.release()
    return n, size


def _y(bgr):
    return colour.bgr_to_ycbcr(bgr)[..., 0]


def test_synthetic_to_video_with_stats(bundle_y, tmp_path):
    out, st = tmp_path / "sr.mp4", tmp_path / "stats.json"
    stats = run_pipeline(bundle_y, "test://?size=64x48&fps=0&frames=12", str(out), backend="ort-cpu",
                         threads=1, stats_json=str(st), quiet=True)
    saved = json.loads(st.read_text())
    assert saved["frames_processed"] == stats["frames_processed"] == 12
    assert saved["frames_captured"] == 12 and saved["frames_dropped"] == 0 and saved["frames_written"] == 12
    assert saved["accounted"] and saved["end_reason"] == "eos"
    assert saved["input_size"] == [64, 48] and saved["output_size"] == [128, 96]
    assert saved["latency_ms"]["p50"] > 0 and saved["latency_ms"]["p95"] >= saved["latency_ms"]["p50"]
    assert _count_frames(out) == (12, (96, 128, 3))


def test_y_model_output_matches_prediction(bundle_y, tmp_path):
    src = open_source("test://?size=40x24&fps=0")
    inp = tmp_path / "in"
    inp.mkdir()
    import cv2

    frames = [src.frame(i) for i in (0, 7)]
    for i, f in enumerate(frames):
        cv2.imwrite(str(inp / ("img%d.png" % i)), f)
    out = tmp_path / "out"
    stats = run_pipeline(bundle_y, str(inp), str(out) + "/", backend="ort-cpu", quiet=True)
    assert stats["frames_written"] == 2
    assert sorted(os.listdir(str(out))) == ["img0.png", "img1.png"]
    for i, f in enumerate(frames):
        sr = cv2.imread(str(out / ("img%d.png" % i)))
        assert sr.shape == (48, 80, 3)
        # luma is the nearest-neighbour upscale of the input luma, up to uint8 rounding and the
        # clipping of saturated pixels once bicubic chroma overshoots
        err = np.abs(_y(sr) - np.repeat(np.repeat(_y(f), 2, 0), 2, 1))
        assert err.mean() < 0.5 and np.percentile(err, 99) < 1.5
        # chroma is bicubic: the frame is close to OpenCV's bicubic upscale
        assert np.abs(sr.astype(float) - colour.bicubic_bgr(f, 2)).mean() < 12


def test_rgb_model_and_tiles_match_whole_frames(tmp_path):
    bundle = load_bundle(make_bundle(tmp_path / "rgb", color="rgb"))
    frame = open_source("test://?size=70x50&fps=0").frame(3)
    with create_backend(bundle, "ort-cpu", threads=1) as be:
        whole = SRProcessor(bundle.spec, be).process(frame)
        tiled = SRProcessor(bundle.spec, be, tile=24, tile_overlap=4).process(frame)
    np.testing.assert_array_equal(whole, np.repeat(np.repeat(frame, 2, 0), 2, 1))
    np.testing.assert_array_equal(tiled, whole)


def test_live_source_drops_are_counted(bundle_y):
    # a paced 200 FPS source against a writer that cannot keep up: drops must appear and balance
    bundle = load_bundle(bundle_y)
    p = Pipeline(bundle, [create_backend(bundle, "ort-cpu", threads=1)], "test://?size=320x240&fps=200",
                 "null://", PipelineOptions(frames=40, quiet=True))
    s = p.run()
    assert s["frames_processed"] == 40 and s["end_reason"] == "frames"
    assert s["frames_captured"] == s["frames_processed"] + s["frames_dropped"]


def test_reconnect_and_source_failure(bundle_y, tmp_path):
    s = run_pipeline(bundle_y, "test://?size=32x32&fps=100&fail_at=5", "null://", backend="ort-cpu",
                     frames=12, reconnect=True, max_backoff=0.05, quiet=True)
    assert s["reconnects"] >= 2 and s["frames_processed"] == 12 and s["accounted"]
    out = tmp_path / "partial.avi"
    s = run_pipeline(bundle_y, "test://?size=32x32&fps=0&fail_at=5", str(out), backend="ort-cpu", quiet=True)
    assert s["end_reason"] == "source-error" and "fail_at" in s["error"]
    assert _count_frames(out)[0] == s["frames_written"] == 5


def test_silent_live_source_times_out(bundle_y, tmp_path):
    out = tmp_path / "stuck.avi"
    s = run_pipeline(bundle_y, "test://?size=32x32&fps=100&hang_at=4&hang_s=1.5", str(out), backend="ort-cpu",
                     quiet=True, source_timeout=0.5)
    assert s["end_reason"] == "source-error" and "no frame" in s["error"]
    assert s["frames_written"] == s["frames_processed"] >= 1 and s["accounted"]
    assert _count_frames(out)[0] == s["frames_written"]


def test_truncated_video_source_ends_cleanly(bundle_y, tmp_path):
    clip = tmp_path / "clip.avi"
    src = open_source("test://?size=64x48&fps=0&frames=20")
    with open_sink(str(clip)) as sink:
        for _ in range(20):
            sink.write(src.read()[1])
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "sr.mp4"
    s = run_pipeline(bundle_y, str(cut), str(out), backend="ort-cpu", quiet=True)
    assert s["end_reason"] == "source-error" and "truncated" in s["error"]
    assert 0 < s["frames_written"] < 20
    assert _count_frames(out) == (s["frames_written"], (96, 128, 3))


def _camera(args, **kw):
    return subprocess.run([sys.executable, "-m", "kdedge.camera"] + args, capture_output=True, text=True,
                          timeout=120, **kw)


def test_camera_cli_errors(bundle_y, tmp_path):
    r = _camera(["--model", str(bundle_y), "--no-such-flag"])
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr
    r = _camera(["--model", str(bundle_y), "--input", "webrtc://host/x", "--output", "null://"])
    assert r.returncode == 1 and "unsupported URI scheme 'webrtc'" in r.stderr
    bad = make_bundle(tmp_path / "bad")
    with open(str(bad / "model.onnx"), "ab") as f:
        f.write(b"x")
    r = _camera(["--model", str(bad), "--frames", "2", "--output", "null://", "--backend", "ort-cpu"])
    assert r.returncode == 1 and "sha256" in r.stderr


@pytest.mark.slow
def test_sigterm_finishes_a_playable_file(bundle_y, tmp_path):
    out, st = tmp_path / "live.mp4", tmp_path / "stats.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kdedge.camera", "--model", str(bundle_y), "--input", "test://?size=64x48&fps=30",
         "--output", str(out), "--stats-json", str(st), "--backend", "ort-cpu", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not any(n.startswith(".live") for n in os.listdir(str(tmp_path))):
        time.sleep(0.2)  # wait until the writer has started the file
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err  # SIGTERM's own status (128 + 15), after the file is finished
    stats = json.loads(st.read_text())
    assert stats["end_reason"] == "signal" and stats["signal"] == "SIGTERM" and stats["accounted"]
    assert stats["frames_written"] == stats["frames_processed"] > 0
    assert _count_frames(out) == (stats["frames_written"], (96, 128, 3))
    assert not [n for n in os.listdir(str(tmp_path)) if "partial" in n]


def test_two_workers_write_every_frame_in_capture_order(bundle_y, tmp_path):
    """workers=2: two SR threads on consecutive frames; the writer restores capture order, so a folder
    run gives the same files, names and pixels as one worker."""
    import cv2

    src = open_source("test://?size=48x32&fps=0")
    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(16):
        cv2.imwrite(str(inp / ("f%02d.png" % i)), src.frame(i * 5))
    outs = {}
    for workers in (1, 2):
        out = tmp_path / ("out%d" % workers)
        stats = run_pipeline(bundle_y, str(inp), str(out) + "/", backend="ort-cpu", workers=workers, quiet=True)
        assert stats["frames_written"] == 16 and stats["accounted"]
        outs[workers] = {n: cv2.imread(str(out / n)) for n in sorted(os.listdir(str(out)))}
    assert list(outs[2]) == list(outs[1]) == ["f%02d.png" % i for i in range(16)]
    for name, img in outs[1].items():
        np.testing.assert_array_equal(outs[2][name], img)


def test_two_workers_stop_at_the_frame_limit_and_need_the_cpu_backend(bundle_y):
    from kdedge.errors import KdedgeError

    s = run_pipeline(bundle_y, "test://?size=64x48&fps=0", "null://", backend="ort-cpu", workers=2, frames=10,
                     quiet=True)
    assert s["frames_processed"] == 10 == s["frames_written"] and s["end_reason"] == "frames"
    assert s["frames_captured"] == s["frames_processed"] + s["frames_dropped"]
    with pytest.raises(KdedgeError, match="CPU backend"):
        run_pipeline(bundle_y, "test://", "null://", backend="tensorrt", workers=2)
    with pytest.raises(KdedgeError, match="at least 1"):
        run_pipeline(bundle_y, "test://", "null://", backend="ort-cpu", workers=0)
