"""Resource strings named as jetson-utils names them (one parser), the options shared by sources and
sinks, and what this OpenCV build can do (GStreamer, a GUI).

Sources (runtime/sources.py): `csi://0` (GStreamer nvarguscamerasrc; its appsink keeps one buffer
and drops the rest, so latency cannot build up), `v4l2:///dev/video0`, `rtsp://host:port/path`, a
video file, an image file, an image folder, `test://` (a deterministic moving pattern;
`test://?size=480x270&fps=30&frames=300`, fps=0 means as fast as the consumer reads). Sinks
(runtime/sinks.py): `display://0`, a video file (.mp4 = mp4v, .avi = MJPG), an image file, an image
folder (a path ending in / or without extension), `null://`. Without a scheme the kind is inferred
as jetson-utils does: `/dev/video*` -> v4l2, an integer -> csi, `display` -> display, anything else
a path. GStreamer launch strings for cameras and streams: runtime/gst.py.
"""
from __future__ import annotations

import os
import re
from typing import Dict, Optional

from kdedge.common import IMAGE_EXTENSIONS
from kdedge.errors import KdedgeError

SOURCE_SCHEMES = ("csi", "v4l2", "rtsp", "file", "test")
SINK_SCHEMES = ("display", "file", "null")
IMAGE_EXTS = IMAGE_EXTENSIONS
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mjpg", ".mjpeg", ".h264", ".ts", ".flv", ".wmv")
DEFAULT_LATENCY_MS = 10  # jetson-utils videoOptions: latency = 10 (rtspsrc jitter buffer, ms)
# --input-codec values. Streams (rtsp): the codec of the RTP payload. USB cameras: the format asked
# for (mjpeg, raw = uncompressed YUYV, h264/h265 for cameras that encode). "auto": rtsp assumes
# h264 (jetson-utils discovers it; OpenCV cannot), a camera picks its best mode (choose_v4l2_mode).
INPUT_CODECS = ("auto", "h264", "h265", "vp8", "vp9", "mpeg4", "mjpeg", "raw")

USAGE = """input URIs:  csi://0  v4l2:///dev/video0  rtsp://host:8554/stream  clip.mp4  frames/  photo.png
             test://  test://?size=960x540&fps=30&frames=300   (fps=0: as fast as possible)
output URIs: display://0  out.mp4 (mp4v)  out.avi (MJPG)  out_frames/  out.png  null://"""

GST_FIX = ("this OpenCV has no GStreamer (pip wheels never do). On a Jetson use JetPack's OpenCV: "
           "`pip uninstall opencv-python opencv-python-headless` in your venv, create it with "
           "--system-site-packages, and check `kdedge doctor`")


class URI:
    """A parsed resource string: scheme, location, extension, query options."""

    def __init__(self, string: str, scheme: str, location: str, query: Optional[Dict[str, str]] = None):
        self.string = string
        self.scheme = scheme
        self.location = location
        self.query = query or {}
        self.extension = os.path.splitext(location)[1].lower() if scheme == "file" else ""

    def __repr__(self) -> str:
        return "URI(%r -> %s://%s)" % (self.string, self.scheme, self.location)


def parse_uri(string: str) -> URI:
    """Parse `string` into a URI; infer the scheme when absent (see module docstring)."""
    if not isinstance(string, str) or not string.strip():
        raise KdedgeError("empty input/output URI", fix=USAGE)
    s = string.strip()
    query = {}  # type: Dict[str, str]
    if "://" in s:
        scheme, rest = s.split("://", 1)
        scheme = scheme.lower()
        if scheme in ("test", "null", "display", "csi", "v4l2") and "?" in rest:
            rest, qs = rest.split("?", 1)
            for part in qs.split("&"):
                if part:
                    key, _, value = part.partition("=")
                    query[key.lower()] = value
        if scheme in ("rtsp", "rtsps"):
            return URI(string, "rtsp", s, query)
        if scheme not in ("csi", "v4l2", "file", "test", "display", "null"):
            raise KdedgeError("unsupported URI scheme %r in %r" % (scheme, string),
                              fix="supported: csi, v4l2, rtsp, file (or a plain path), test, display, null\n" + USAGE)
        if scheme == "file":
            rest = os.path.abspath(os.path.expanduser(rest)) if rest else rest
        return URI(string, scheme, rest, query)
    if s.startswith("/dev/video"):
        return URI(string, "v4l2", s)
    if s.isdigit():
        return URI(string, "csi", s)
    if s in ("display", "null", "test"):
        return URI(string, s, "0" if s == "display" else "")
    return URI(string, "file", os.path.abspath(os.path.expanduser(s)))


def cv2_build_info() -> Dict[str, str]:
    """The lines of cv2.getBuildInformation() we care about: GStreamer, FFMPEG, GUI."""
    import cv2

    info = {}
    for line in cv2.getBuildInformation().splitlines():
        m = re.match(r"\s*(GStreamer|FFMPEG|GUI|GTK\+?|QT|V4L/V4L2):\s*(.*)$", line)
        if m:
            info.setdefault(m.group(1), m.group(2).strip())
    return info


def gstreamer_available() -> bool:
    return cv2_build_info().get("GStreamer", "NO").upper().startswith("YES")


def display_available() -> bool:
    """True when OpenCV has a GUI backend and a display server is reachable."""
    gui = cv2_build_info().get("GUI", "NONE").upper()
    return gui not in ("", "NONE") and bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class VideoOptions:
    """Options shared by sources and sinks (jetson-utils videoOptions): size, rate, loop, codec, latency.

    width/height/rate ask a camera for a mode (it may pick the nearest); `loop` replays a file
    source (0 = once, -1 = forever); `codec` is, for a video sink, the fourcc it writes and, for a
    source, the stream's codec (`--input-codec`: rtsp streams, and the format a USB camera is asked
    for; None = auto); `fps` is the frame rate written into a video sink when the source does not know
    its own; `latency_ms` is rtspsrc's jitter buffer (`--input-latency`, jetson-utils' default 10).
    """

    def __init__(self, width: Optional[int] = None, height: Optional[int] = None, rate: Optional[float] = None,
                 loop: int = 0, codec: Optional[str] = None, fps: float = 30.0, latency_ms: int = DEFAULT_LATENCY_MS):
        self.width, self.height, self.rate = width, height, rate
        self.loop, self.codec, self.fps, self.latency_ms = loop, codec, fps, latency_ms



def check_run_paths(input_uri: str, output_uri: str, stats_json: Optional[str] = None) -> None:
    """Before a run: the output is not the input (a file, or a folder into itself), and every file
    written at the end (--stats-json) can be written. KdedgeError names the path."""
    from kdedge.paths import check_output, check_writable_file

    src, dst = parse_uri(input_uri), parse_uri(output_uri)
    inputs = [src.location] if src.scheme == "file" else []
    if dst.scheme == "file":
        check_output(dst.location, inputs)
    if stats_json:
        check_output(stats_json, inputs + ([dst.location] if dst.scheme == "file" else []), "--stats-json file")
        check_writable_file(stats_json, "--stats-json file")

