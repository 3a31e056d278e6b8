"""GStreamer pipeline strings and camera-mode choices (runtime/gst.py), checked as strings and decisions.

No GStreamer, camera or Jetson exists on the development machines, so these tests check what kdedge
asks GStreamer/OpenCV for, against the element chains jetson-utils builds (dusty-nv/jetson-utils
fae4b42: cpp/codec/gstDecoder.cpp buildLaunchStr, cpp/codec/gstUtility.cpp gst_select_decoder,
cpp/camera/gstCamera.cpp buildLaunchStr/matchCaps, cpp/video/videoOptions.cpp latency = 10). They do
not show that a Jetson plays the stream: that needs the device.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from kdedge.errors import KdedgeError
from kdedge.runtime.gst import (V4l2Mode, check_rtsp_url, choose_v4l2_mode, parse_v4l2_formats, rtsp_pipeline,
                                v4l2_capture_settings, v4l2_pipeline)
from kdedge.runtime.sinks import open_sink
from kdedge.runtime.uri import VideoOptions

URL = "rtsp://user:p%40ss@cam.local:8554/live/stream?x=1&y=2"


def _elements(pipeline):
    return [part.strip().split(" ")[0] for part in pipeline.split(" ! ")]


def test_rtsp_on_jetson_uses_nvv4l2decoder_and_nvvidconv():
    p = rtsp_pipeline(URL, VideoOptions(), jetson=True)
    assert p.startswith('rtspsrc location="%s" latency=10 ! ' % URL)
    assert _elements(p) == ["rtspsrc", "queue", "rtph264depay", "nvv4l2decoder", "video/x-raw(memory:NVMM)",
                            "nvvidconv", "video/x-raw,format=BGRx", "videoconvert", "video/x-raw,format=BGR", "appsink"]
    assert "decodebin" not in p and "appsink drop=1 max-buffers=1 sync=false" in p


@pytest.mark.parametrize("codec,chain", [
    ("h264", ["rtph264depay", "h264parse", "avdec_h264"]),
    ("h265", ["rtph265depay", "h265parse", "avdec_h265"]),
    ("vp9", ["rtpvp9depay", "vp9dec"]),
    ("mjpeg", ["rtpjpegdepay", "jpegdec"]),
])
def test_rtsp_on_desktop_gstreamer_uses_parser_and_software_decoder(codec, chain):
    p = rtsp_pipeline(URL, VideoOptions(codec=codec, latency_ms=200), jetson=False)
    assert _elements(p) == ["rtspsrc", "queue"] + chain + ["videoconvert", "video/x-raw,format=BGR", "appsink"]
    assert " latency=200 " in p and "nvvidconv" not in p


def test_rtsp_h265_and_mjpeg_on_jetson():
    h265 = rtsp_pipeline(URL, VideoOptions(codec="hevc"), jetson=True)
    assert _elements(h265)[2:4] == ["rtph265depay", "nvv4l2decoder"]
    mjpeg = rtsp_pipeline(URL, VideoOptions(codec="mjpeg"), jetson=True)  # jetson-utils: CPU jpegdec
    assert _elements(mjpeg)[2:4] == ["rtpjpegdepay", "jpegdec"] and "NVMM" not in mjpeg


@pytest.mark.parametrize("bad", [
    "rtsp://h/x ! fakesink",  # the injection the issue shows
    'rtsp://h/x" ! fakesink name="y',  # closing the quote
    "rtsp://h/x\\\" ! fakesink",
    "rtsp://h/x\tfakesink",
    "rtsp://h/x\nfakesink",
    "http://h/x",
    "rtsp://",
    "",
])
def test_rtsp_url_validation_rejects_what_could_escape_the_location(bad):
    with pytest.raises(KdedgeError, match="not a valid rtsp"):
        check_rtsp_url(bad)
    with pytest.raises(KdedgeError):
        rtsp_pipeline(bad, VideoOptions())


def test_rtsp_url_is_quoted_and_one_element_whatever_it_holds():
    url = "rtsp://h/x!fakesink"  # '!' is a legal URL character: quoted, it stays inside location
    p = rtsp_pipeline(url, VideoOptions(), jetson=False)
    assert 'location="rtsp://h/x!fakesink"' in p
    assert p.count('"') == 2
    assert _elements(p) == ["rtspsrc", "queue", "rtph264depay", "h264parse", "avdec_h264", "videoconvert",
                            "video/x-raw,format=BGR", "appsink"]  # no fakesink element
    assert check_rtsp_url(URL) == URL and check_rtsp_url("rtsps://[::1]:322/a") == "rtsps://[::1]:322/a"


def test_input_codec_and_latency_errors():
    with pytest.raises(KdedgeError, match="--input-codec 'av1'"):
        rtsp_pipeline(URL, VideoOptions(codec="av1"))
    with pytest.raises(KdedgeError, match="--input-codec 'raw'"):
        rtsp_pipeline(URL, VideoOptions(codec="raw"))  # raw is a camera format, not an RTP codec
    with pytest.raises(KdedgeError, match="--input-latency"):
        rtsp_pipeline(URL, VideoOptions(latency_ms=-1))
    assert VideoOptions().latency_ms == 10


def test_camera_cli_flags_reach_the_options():
    from kdedge.camera import build_parser

    args = build_parser().parse_args(["--input-codec", "h265", "--input-latency", "0"])
    assert args.input_codec == "h265" and args.input_latency == 0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--input-codec", "av1"])


V4L2_CTL = """ioctl: VIDIOC_ENUM_FMT
\tType: Video Capture

\t[0]: 'YUYV' (YUYV 4:2:2)
\t\tSize: Discrete 640x480
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\tSize: Discrete 1280x720
\t\t\tInterval: Discrete 0.100s (10.000 fps)
\t\tSize: Discrete 1920x1080
\t\t\tInterval: Discrete 0.200s (5.000 fps)
\t[1]: 'MJPG' (Motion-JPEG, compressed)
\t\tSize: Discrete 640x480
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\tSize: Discrete 1280x720
\t\t\tInterval: Discrete 0.017s (60.000 fps)
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\tSize: Discrete 1920x1080
\t\t\tInterval: Discrete 0.033s (30.000 fps)
"""


def test_parse_v4l2_ctl_output():
    modes = parse_v4l2_formats(V4L2_CTL)
    assert len(modes) == 7
    assert modes[0] == V4l2Mode("YUYV", 640, 480, 30) and modes[0].codec == "raw"
    assert modes[-1] == V4l2Mode("MJPG", 1920, 1080, 30) and modes[-1].codec == "mjpeg"


def test_camera_mode_prefers_mjpg_when_it_is_faster():
    modes = parse_v4l2_formats(V4L2_CTL)
    assert choose_v4l2_mode(modes, 1920, 1080, None) == V4l2Mode("MJPG", 1920, 1080, 30)
    assert choose_v4l2_mode(modes, None, None, None) == V4l2Mode("MJPG", 1280, 720, 60)  # 1280x720 default
    assert choose_v4l2_mode(modes, 1280, 720, 30) == V4l2Mode("MJPG", 1280, 720, 30)
    # same size and rate in both formats: uncompressed wins the tie (jetson-utils: MJPEG is not preferred)
    assert choose_v4l2_mode(modes, 640, 480, None) == V4l2Mode("YUYV", 640, 480, 30)
    # forcing a format
    assert choose_v4l2_mode(modes, 1920, 1080, None, "raw") == V4l2Mode("YUYV", 1920, 1080, 5)
    assert choose_v4l2_mode(modes, 640, 480, None, "mjpeg") == V4l2Mode("MJPG", 640, 480, 30)
    assert choose_v4l2_mode(modes, 640, 480, None, "h264") is None
    assert choose_v4l2_mode([], 640, 480, None) is None


def test_opencv_v4l2_settings_set_the_fourcc_first():
    mode = V4l2Mode("MJPG", 1920, 1080, 30)
    props = v4l2_capture_settings(mode, VideoOptions())
    assert props == [("CAP_PROP_FOURCC", "MJPG"), ("CAP_PROP_FRAME_WIDTH", 1920), ("CAP_PROP_FRAME_HEIGHT", 1080),
                     ("CAP_PROP_FPS", 30.0), ("CAP_PROP_BUFFERSIZE", 1)]
    # modes unknown (no v4l2-ctl): auto asks for MJPG, raw for YUYV, and the size as given
    assert v4l2_capture_settings(None, VideoOptions(width=1280, height=720))[:3] == [
        ("CAP_PROP_FOURCC", "MJPG"), ("CAP_PROP_FRAME_WIDTH", 1280), ("CAP_PROP_FRAME_HEIGHT", 720)]
    assert v4l2_capture_settings(None, VideoOptions(codec="yuyv"))[0] == ("CAP_PROP_FOURCC", "YUYV")
    import cv2

    for prop, _ in props:
        assert hasattr(cv2, prop)
    assert cv2.VideoWriter_fourcc(*"MJPG") == 0x47504A4D


def test_v4l2_gstreamer_pipelines():
    mjpg = v4l2_pipeline("/dev/video0", V4l2Mode("MJPG", 1920, 1080, 30), jetson=True)
    assert mjpg == ("v4l2src device=/dev/video0 do-timestamp=true ! image/jpeg, width=(int)1920, height=(int)1080, "
                    "framerate=30/1 ! jpegdec ! video/x-raw ! videoconvert ! video/x-raw,format=BGR ! "
                    "appsink drop=1 max-buffers=1 sync=false")
    raw = v4l2_pipeline("/dev/video1", V4l2Mode("YUYV", 640, 480, 30))
    assert "video/x-raw, format=(string)YUY2, width=(int)640, height=(int)480, framerate=30/1 ! videoconvert" in raw
    h264 = v4l2_pipeline("/dev/video0", V4l2Mode("H264", 1920, 1080, 30), jetson=True)
    assert _elements(h264)[2:5] == ["nvv4l2decoder", "video/x-raw(memory:NVMM)", "nvvidconv"]
    h264_desktop = v4l2_pipeline("/dev/video0", V4l2Mode("H264", 1920, 1080, 30), jetson=False)
    assert _elements(h264_desktop)[2:4] == ["h264parse", "avdec_h264"]
    with pytest.raises(KdedgeError, match="not a V4L2 device"):
        v4l2_pipeline("/dev/video0 ! fakesink", V4l2Mode("MJPG", 640, 480, 30))


def test_display_sink_makes_every_highgui_call_in_one_thread(monkeypatch):
    """HighGUI stand-ins record the calling thread: this checks OUR threading, not OpenCV's GUI."""
    import cv2

    from kdedge.runtime import sinks

    calls = []
    monkeypatch.setattr(sinks, "display_available", lambda: True)  # the name DisplaySink.open looks up
    monkeypatch.setattr(cv2, "imshow", lambda name, frame: calls.append(("imshow", threading.get_ident())))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: calls.append(("waitKey", threading.get_ident())) or -1)
    monkeypatch.setattr(cv2, "destroyWindow", lambda name: calls.append(("destroyWindow", threading.get_ident())))
    sink = open_sink("display://0")
    frame = np.zeros((8, 8, 3), np.uint8)
    writer = threading.Thread(target=lambda: [sink.write(frame) for _ in range(5)])
    writer.start()
    writer.join()
    closer = threading.Thread(target=sink.close)  # closed from yet another thread, as the pipeline does
    closer.start()
    closer.join()
    kinds = {k for k, _ in calls}
    assert {"imshow", "waitKey", "destroyWindow"} <= kinds
    threads = {t for _, t in calls}
    assert threads == {sink.gui_thread.ident}
    assert writer.ident not in threads and closer.ident not in threads and threading.get_ident() not in threads
    assert sink.frames_written == 5 and not sink.gui_thread.is_alive()
