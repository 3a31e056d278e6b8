"""GStreamer launch strings for cameras and streams, and the choice of a USB camera's mode, as
jetson-utils' gstCamera / gstDecoder build them. Pure strings and decisions (tests check them
without a camera); runtime/sources.py opens them with cv2.VideoCapture(..., CAP_GSTREAMER)."""
from __future__ import annotations

import os
import re
from typing import Any, List, NamedTuple, Optional, Tuple

from kdedge.errors import KdedgeError
from kdedge.runtime.doctor import TEGRA_RELEASE  # L4T's release file (doctor reads it; stdlib-only import)
from kdedge.runtime.uri import DEFAULT_LATENCY_MS, INPUT_CODECS, VideoOptions


def csi_pipeline(sensor: int, opt: VideoOptions) -> str:
    """nvarguscamerasrc -> NVMM -> BGR appsink that holds one buffer and drops older ones."""
    w, h, r = opt.width or 1280, opt.height or 720, int(opt.rate or 30)
    return ("nvarguscamerasrc sensor-id=%d ! video/x-raw(memory:NVMM),width=%d,height=%d,framerate=%d/1 ! "
            "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
            "appsink drop=1 max-buffers=1 sync=false" % (sensor, w, h, r))


# codec -> (RTP depayloader, parser for software decoders, software decoder), as jetson-utils'
# gstDecoder::buildLaunchStr and gst_select_decoder (CODEC_CPU) choose them.
_RTP = {
    "h264": ("rtph264depay", "h264parse", "avdec_h264"),
    "h265": ("rtph265depay", "h265parse", "avdec_h265"),
    "vp8": ("rtpvp8depay", "", "vp8dec"),
    "vp9": ("rtpvp9depay", "", "vp9dec"),
    "mpeg4": ("rtpmp4vdepay", "mpeg4videoparse", "avdec_mpeg4"),
    "mjpeg": ("rtpjpegdepay", "", "jpegdec"),
}
_APPSINK = "appsink drop=1 max-buffers=1 sync=false"  # newest frame only: latency cannot build up
_TO_BGR = "videoconvert ! video/x-raw,format=BGR ! " + _APPSINK
# NVIDIA's V4L2 decoders output NVMM memory, which videoconvert cannot read: nvvidconv copies it out.
_NVMM_TO_BGR = "video/x-raw(memory:NVMM) ! nvvidconv ! video/x-raw,format=BGRx ! " + _TO_BGR
_RTSP_URL = re.compile(r"^rtsps?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$")


def is_jetson() -> bool:
    """A Jetson (L4T): NVIDIA's hardware decoders (nvv4l2decoder) and nvvidconv exist."""
    return os.path.isfile(TEGRA_RELEASE)


def input_codec(codec: Optional[str], scheme: str) -> str:
    """Normalise --input-codec for `scheme` ("rtsp" or "v4l2"); KdedgeError names the bad value."""
    c = (codec or "auto").strip().lower()
    c = {"mjpg": "mjpeg", "jpeg": "mjpeg", "hevc": "h265", "yuyv": "raw", "yuy2": "raw", "avc": "h264"}.get(c, c)
    allowed = INPUT_CODECS if scheme == "v4l2" else tuple(k for k in INPUT_CODECS if k != "raw")
    if c not in allowed:
        raise KdedgeError("--input-codec %r is not supported for %s inputs" % (codec, scheme),
                          fix="choose one of: " + ", ".join(allowed))
    return c


def check_rtsp_url(url: str) -> str:
    """The URL, if it is a plain rtsp:// or rtsps:// URL; else KdedgeError. It is pasted into a
    GStreamer launch string, where a space, quote or backslash could end the `location` value and add
    elements (`rtsp://h/x ! fakesink`): only RFC 3986 URL characters pass (percent-encode the rest)."""
    if not isinstance(url, str) or not _RTSP_URL.match(url) or len(url) > 2048:
        raise KdedgeError("%r is not a valid rtsp:// URL" % (url,),
                          fix="use rtsp://[user:password@]host[:port]/path with spaces and quotes percent-encoded (%20, %22)")
    return url


def rtsp_pipeline(url: str, opt: VideoOptions, jetson: bool = False) -> str:
    """rtspsrc -> depayloader -> (parser) -> decoder -> BGR appsink, as jetson-utils' gstDecoder builds it.

    On a Jetson the decoder is nvv4l2decoder (no parser, as jetson-utils) followed by nvvidconv out of
    NVMM memory; elsewhere (desktop GStreamer) the parser and a software decoder (avdec_*). MJPEG is
    decoded by jpegdec on both, as jetson-utils does. The URL is validated and quoted.
    """
    url = check_rtsp_url(url)
    codec = input_codec(opt.codec, "rtsp")
    codec = "h264" if codec == "auto" else codec
    latency = int(opt.latency_ms if opt.latency_ms is not None else DEFAULT_LATENCY_MS)
    if latency < 0:
        raise KdedgeError("--input-latency must be 0 or more milliseconds, got %d" % latency)
    depay, parser, soft = _RTP[codec]
    head = 'rtspsrc location="%s" latency=%d ! queue ! %s ! ' % (url, latency, depay)
    if jetson and codec != "mjpeg":
        return head + "nvv4l2decoder name=decoder enable-max-performance=1 ! " + _NVMM_TO_BGR
    return head + (parser + " ! " if parser else "") + soft + " ! " + _TO_BGR


# -- USB (V4L2) cameras ----------------------------------------------------------------------------

class V4l2Mode(NamedTuple):
    """One mode a V4L2 camera offers: fourcc, size, frame rate; `codec` ("mjpeg", "raw", "h264", ...)."""

    fourcc: str
    width: int
    height: int
    fps: float

    @property
    def codec(self) -> str:
        return _FOURCC_CODEC.get(self.fourcc, "raw" if self.fourcc in _RAW_FOURCC else self.fourcc.lower())


_FOURCC_CODEC = {"MJPG": "mjpeg", "JPEG": "mjpeg", "H264": "h264", "HEVC": "h265", "H265": "h265"}
_RAW_FOURCC = {"YUYV": "YUY2", "UYVY": "UYVY", "NV12": "NV12", "YU12": "I420", "GREY": "GRAY8", "RGB3": "RGB", "BGR3": "BGR"}
_DEFAULT_CAMERA = (1280, 720)  # jetson-utils' default camera size when none is asked for


def parse_v4l2_formats(text: str) -> List[V4l2Mode]:
    """Modes from `v4l2-ctl --list-formats-ext` output (discrete sizes and intervals)."""
    modes = []  # type: List[V4l2Mode]
    fourcc, size = None, None
    for line in text.splitlines():
        m = re.match(r"\s*\[\d+\]:\s*'(\w{3,4})'", line)
        if m:
            fourcc, size = m.group(1).strip(), None
            continue
        m = re.match(r"\s*Size:\s*Discrete\s+(\d+)x(\d+)", line)
        if m:
            size = (int(m.group(1)), int(m.group(2)))
            continue
        m = re.match(r"\s*Interval:\s*Discrete\s+[\d.]+s\s*\(([\d.]+)\s*fps\)", line)
        if m and fourcc and size:
            modes.append(V4l2Mode(fourcc, size[0], size[1], float(m.group(1))))
    return modes


def list_v4l2_modes(device: str) -> List[V4l2Mode]:
    """The camera's modes through `v4l2-ctl` (package v4l-utils); [] when it is missing or fails."""
    import shutil
    import subprocess

    exe = shutil.which("v4l2-ctl")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-d", device, "--list-formats-ext"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_v4l2_formats(out.stdout.decode("utf-8", "replace"))


def choose_v4l2_mode(modes: List[V4l2Mode], width: Optional[int], height: Optional[int], rate: Optional[float],
                     codec: str = "auto") -> Optional[V4l2Mode]:
    """jetson-utils' gstCamera::matchCaps: the mode closest to the asked size, then the highest frame
    rate (at most `rate` when given), MJPEG losing exact ties to uncompressed. So a USB 2 camera whose
    YUYV 1080p runs at 5 FPS and MJPG 1080p at 30 gets MJPG. `codec` other than auto keeps only that
    codec (--input-codec mjpeg / raw); None when no mode is known (v4l2-ctl missing) or none fits."""
    want_w, want_h = (width, height) if width and height else _DEFAULT_CAMERA
    best = None  # type: Optional[V4l2Mode]
    best_key = (0, 0.0)
    for m in modes:
        if codec != "auto" and m.codec != codec:
            continue
        fps = min(m.fps, rate) if rate else m.fps  # faster than asked is worth no more than asked
        diff = abs(want_w - m.width) + abs(want_h - m.height)
        if best is None or diff < best_key[0] or (diff == best_key[0] and (
                fps > best_key[1] or (fps == best_key[1] and best.codec == "mjpeg" and m.codec != "mjpeg"))):
            best, best_key = V4l2Mode(m.fourcc, m.width, m.height, fps), (diff, fps)
    return best


def v4l2_capture_settings(mode: Optional[V4l2Mode], opt: VideoOptions) -> List[Tuple[str, Any]]:
    """cv2.VideoCapture(device, CAP_V4L2) properties, in the order they must be set (the format
    first: it decides which sizes the driver accepts). Without a known mode (v4l2-ctl missing),
    auto still asks for MJPG: the driver keeps its default format if the camera has none."""
    props = []  # type: List[Tuple[str, Any]]
    codec = input_codec(opt.codec, "v4l2")
    if mode is not None:
        props.append(("CAP_PROP_FOURCC", mode.fourcc))
        props += [("CAP_PROP_FRAME_WIDTH", mode.width), ("CAP_PROP_FRAME_HEIGHT", mode.height),
                  ("CAP_PROP_FPS", mode.fps)]
    else:
        if codec in ("auto", "mjpeg"):
            props.append(("CAP_PROP_FOURCC", "MJPG"))
        elif codec == "raw":
            props.append(("CAP_PROP_FOURCC", "YUYV"))
        if opt.width and opt.height:
            props += [("CAP_PROP_FRAME_WIDTH", opt.width), ("CAP_PROP_FRAME_HEIGHT", opt.height)]
        if opt.rate:
            props.append(("CAP_PROP_FPS", opt.rate))
    props.append(("CAP_PROP_BUFFERSIZE", 1))  # keep latency down where the driver honours it
    return props


def v4l2_pipeline(device: str, mode: V4l2Mode, jetson: bool = False) -> str:
    """v4l2src -> caps of the chosen mode -> decoder -> BGR appsink, as jetson-utils' gstCamera builds it
    (jpegdec for MJPEG; nvv4l2decoder + nvvidconv for H.264/H.265 on a Jetson, avdec elsewhere)."""
    if not re.match(r"^/dev/[A-Za-z0-9_./-]+$", device):
        raise KdedgeError("%r is not a V4L2 device path" % (device,), fix="use v4l2:///dev/videoN")
    rate = int(round(mode.fps))
    head = "v4l2src device=%s do-timestamp=true ! " % device
    if mode.codec == "raw":
        fmt = _RAW_FOURCC.get(mode.fourcc, mode.fourcc)
        return head + "video/x-raw, format=(string)%s, width=(int)%d, height=(int)%d, framerate=%d/1 ! %s" % (
            fmt, mode.width, mode.height, rate, _TO_BGR)
    if mode.codec not in ("mjpeg", "h264", "h265"):
        raise KdedgeError("camera format %s is not supported" % mode.fourcc, fix="pass --input-codec mjpeg or raw")
    caps = {"mjpeg": "image/jpeg", "h264": "video/x-h264", "h265": "video/x-h265"}[mode.codec]
    head += "%s, width=(int)%d, height=(int)%d, framerate=%d/1 ! " % (caps, mode.width, mode.height, rate)
    if mode.codec == "mjpeg":
        return head + "jpegdec ! video/x-raw ! " + _TO_BGR
    if jetson:
        return head + "nvv4l2decoder name=decoder enable-max-performance=1 ! " + _NVMM_TO_BGR
    _, parser, soft = _RTP[mode.codec]
    return head + "%s ! %s ! video/x-raw ! %s" % (parser, soft, _TO_BGR)

