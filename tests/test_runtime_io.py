"""Sources and sinks: URI parsing, the test pattern, video/image files in and out, failures users meet."""
from __future__ import annotations

import os

import numpy as np
import pytest

from kdedge.errors import KdedgeError
from kdedge.runtime.sinks import open_sink
from kdedge.runtime.sources import EOS, ERROR, OK, open_source
from kdedge.runtime.uri import display_available, gstreamer_available, parse_uri


def test_parse_uri_inference_and_errors(tmp_path):
    assert parse_uri("/dev/video1").scheme == "v4l2"
    assert (parse_uri("0").scheme, parse_uri("0").location) == ("csi", "0")
    assert parse_uri("csi://1").location == "1"
    assert parse_uri("display").scheme == "display"
    assert parse_uri("rtsp://cam.local:8554/live").location == "rtsp://cam.local:8554/live"
    u = parse_uri("clip.MP4")
    assert u.scheme == "file" and os.path.isabs(u.location) and u.extension == ".mp4"
    assert parse_uri("file://" + str(tmp_path / "x.avi")).extension == ".avi"
    q = parse_uri("test://?size=64x32&fps=0&frames=5")
    assert q.query == {"size": "64x32", "fps": "0", "frames": "5"}
    with pytest.raises(KdedgeError, match="unsupported URI scheme 'webrtc'"):
        parse_uri("webrtc://host/x")
    with pytest.raises(KdedgeError, match="cannot be an output"):
        open_sink("test://")
    with pytest.raises(KdedgeError, match="cannot be an input"):
        open_source("null://")


def test_pattern_is_deterministic_and_moving():
    a = open_source("test://?size=64x32&fps=0&frames=3")
    b = open_source("test://?size=64x32&fps=0")
    frames = [a.read()[1] for _ in range(3)]
    assert a.read() == (EOS, None)
    assert frames[0].shape == (32, 64, 3) and frames[0].dtype == np.uint8
    np.testing.assert_array_equal(frames[1], b.frame(1))
    assert np.abs(frames[0].astype(int) - frames[1]).mean() > 1.0
    assert not a.live and open_source("test://?fps=30").live


def test_video_round_trip_and_truncation(tmp_path):
    src = open_source("test://?size=64x48&fps=0&frames=12")
    path = str(tmp_path / "clip.avi")
    with open_sink(path) as sink:
        while True:
            status, frame = src.read()
            if status != OK:
                break
            sink.write(frame)
    assert sorted(os.listdir(str(tmp_path))) == ["clip.avi"], "temp file left or not renamed"
    back = open_source(path)
    statuses = [back.read()[0] for _ in range(13)]
    assert statuses == [OK] * 12 + [EOS]
    # cut the file in half: the source must report an error, not a clean end
    data = open(path, "rb").read()
    cut = str(tmp_path / "cut.avi")
    with open(cut, "wb") as f:
        f.write(data[: len(data) // 2])
    try:
        s = open_source(cut)
    except KdedgeError:
        return  # refusing to open is also a clear failure
    while True:
        status, _ = s.read()
        if status != OK:
            break
    assert status == ERROR and "truncated" in s.error


def test_sink_close_without_frames_and_after_error(tmp_path):
    sink = open_sink(str(tmp_path / "empty.mp4"))
    sink.close()
    sink.close()
    assert os.listdir(str(tmp_path)) == []


def test_images_in_and_out(tmp_path):
    out = tmp_path / "frames"
    src = open_source("test://?size=32x16&fps=0&frames=3")
    sink = open_sink(str(out) + "/")
    for _ in range(3):
        sink.write(src.read()[1])
    sink.close()
    assert sorted(os.listdir(str(out))) == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    back = open_source(str(out))
    got = [back.read() for _ in range(4)]
    assert [g[0] for g in got] == [OK] * 3 + [EOS]
    np.testing.assert_array_equal(got[2][1], src.frame(2))
    one = open_sink(str(tmp_path / "one.png"))
    one.write(src.frame(0))
    assert (tmp_path / "one.png").is_file()


def test_missing_inputs_and_gstreamer_message(tmp_path):
    with pytest.raises(KdedgeError, match="does not exist"):
        open_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(KdedgeError, match="no images"):
        open_source(str(tmp_path))
    if not gstreamer_available():
        with pytest.raises(KdedgeError, match="GStreamer") as err:
            open_source("csi://0")
        assert "JetPack" in str(err.value)
    if not display_available():
        with pytest.raises(KdedgeError, match="no display"):
            open_sink("display://0")
