"""Video sources and sinks named by jetson-utils style URIs: one parser, one factory each.

Sources: `csi://0` (GStreamer nvarguscamerasrc; its appsink keeps one buffer and drops the rest, so
latency cannot build up), `v4l2:///dev/video0`, `rtsp://host:port/path`, a video file, an image file,
an image folder, `test://` (a deterministic moving pattern; `test://?size=480x270&fps=30&frames=300`,
fps=0 means as fast as the consumer reads). Sinks: `display://0`, a video file (.mp4 = mp4v,
.avi = MJPG), an image file, an image folder (a path ending in / or without extension), `null://`.
Without a scheme the kind is inferred as jetson-utils does: `/dev/video*` -> v4l2, an integer -> csi,
`display` -> display, anything else a path.

Frames are numpy uint8 BGR (H, W, 3), OpenCV's convention. `Source.read()` returns (status, frame)
with status one of OK, EOS (a clean end), ERROR (a failure: `source.error` says what). Video files
are written to a hidden temp file and renamed on close, so an interrupted run leaves either nothing
or a finished, playable file, never a file without its index.
"""
from __future__ import annotations

import errno
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from kdedge.common import IMAGE_EXTENSIONS, parse_size
from kdedge.errors import KdedgeError, from_os_error
from kdedge.runtime.doctor import TEGRA_RELEASE  # L4T's release file (doctor reads it; stdlib-only import)

OK, EOS, ERROR = "OK", "EOS", "ERROR"
SOURCE_SCHEMES = ("csi", "v4l2", "rtsp", "file", "test")
SINK_SCHEMES = ("display", "file", "null")
IMAGE_EXTS = IMAGE_EXTENSIONS
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mjpg", ".mjpeg", ".h264", ".ts", ".flv", ".wmv")
CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
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


def _size(value: Optional[str], what: str) -> Optional[Tuple[int, int]]:
    return parse_size(value, what) if value else None


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


# ---------------------------------------------------------------------------------------------------
# sources


class Source:
    """Base class. `live` sources (cameras, streams, paced test pattern) produce frames whether or not
    they are read, so the pipeline reads them in a thread and keeps only the newest."""

    live = False

    def __init__(self, uri: URI, options: VideoOptions):
        self.uri = uri
        self.options = options
        self.fps = None  # type: Optional[float]
        self.frame_count = None  # type: Optional[int]  # known length, when the container says
        self.frames_read = 0
        self.error = None  # type: Optional[str]

    def open(self) -> "Source":
        return self

    def read(self) -> Tuple[str, Optional[np.ndarray]]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Source":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _fail(self, message: str) -> Tuple[str, None]:
        self.error = message
        return ERROR, None


class TestPatternSource(Source):
    """A deterministic moving pattern (frame i depends only on i): bars, a sliding gradient, a
    checkerboard and a moving disc, with fine detail so SR has something to do. Query options:
    size=WxH (480x270), fps (30; 0 = unpaced), frames (unlimited), fail_at=N (fail
    like an unplugged camera after N frames; for tests of --reconnect), hang_at=N&hang_s=S (block
    once for S seconds after N frames, like a stuck driver)."""

    def __init__(self, uri: URI, options: VideoOptions):
        super().__init__(uri, options)
        size = _size(uri.query.get("size"), "test:// size") or (options.width or 480, options.height or 270)
        self.width, self.height = size
        try:
            self.fps = float(uri.query.get("fps", options.rate if options.rate is not None else 30))
            frames = uri.query.get("frames")
            self.frame_count = int(frames) if frames else None
            fail_at = uri.query.get("fail_at")  # simulate a camera lost after this many frames
            self.fail_at = int(fail_at) if fail_at else None
            hang_at = uri.query.get("hang_at")  # simulate a camera whose read blocks after N frames
            self.hang_at = int(hang_at) if hang_at else None
            self.hang_s = float(uri.query.get("hang_s", 3600))
        except ValueError as exc:
            raise KdedgeError("bad test:// option in %r: %s" % (uri.string, exc), fix=USAGE) from exc
        self.live = self.fps > 0
        w, h = self.width, self.height
        # A strip twice the frame width is rendered once; frame i is a window into it plus a moving
        # disc, so producing a frame costs a copy and a cv2.circle (a camera stand-in must be cheap,
        # or it would eat the CPU the benchmark is measuring).
        yy = np.arange(h, dtype=np.float32)[:, None]
        xw = np.arange(2 * w, dtype=np.float32)[None, :]
        base = np.empty((h, 2 * w, 3), np.float32)
        base[..., 0] = 128 + 100 * np.sin(xw / 23.0) * np.cos(yy / 17.0)
        base[..., 1] = 128 + 90 * np.sin(xw / 7.0 + yy / 11.0)
        base[..., 2] = xw * 255.0 / (2 * w)
        base += ((((xw // 8) + (yy // 8)) % 2) * 60 - 30)[..., None]
        self._strip = np.clip(base, 0, 255).astype(np.uint8)
        self._t0 = None  # type: Optional[float]

    def frame(self, i: int) -> np.ndarray:
        import cv2

        w, h = self.width, self.height
        off = (3 * i) % w
        img = self._strip[:, off:off + w].copy()
        cx = int(w / 2 + (w / 3) * np.cos(i / 20.0))
        cy = int(h / 2 + (h / 3) * np.sin(i / 15.0))
        cv2.circle(img, (cx, cy), max(2, min(w, h) // 8), (40, 200, 240), -1, cv2.LINE_AA)
        return img

    def read(self) -> Tuple[str, Optional[np.ndarray]]:
        if self.frame_count is not None and self.frames_read >= self.frame_count:
            return EOS, None
        if self.hang_at is not None and self.frames_read >= self.hang_at and self.hang_s > 0:
            time.sleep(self.hang_s)
            self.hang_s = 0.0
        if self.fail_at is not None and self.frames_read >= self.fail_at:
            return self._fail("test pattern: simulated camera loss after %d frames (fail_at)" % self.fail_at)
        if self.live:
            if self._t0 is None:
                self._t0 = time.perf_counter()
            due = self._t0 + self.frames_read / self.fps
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        frame = self.frame(self.frames_read)
        self.frames_read += 1
        return OK, frame


class CvCaptureSource(Source):
    """cv2.VideoCapture over a file (FFMPEG), a V4L2 device, an RTSP stream or a CSI camera (GStreamer)."""

    def open(self) -> "CvCaptureSource":
        import cv2

        uri, opt = self.uri, self.options
        if uri.scheme == "csi":
            if not gstreamer_available():
                raise KdedgeError("%s needs OpenCV with GStreamer" % uri.string, fix=GST_FIX)
            self.live = True
            cap = cv2.VideoCapture(csi_pipeline(int(uri.location or 0), opt), cv2.CAP_GSTREAMER)
        elif uri.scheme == "v4l2":
            self.live = True
            mode = choose_v4l2_mode(list_v4l2_modes(uri.location), opt.width, opt.height, opt.rate,
                                    input_codec(opt.codec, "v4l2"))
            self.mode = mode
            if mode is not None and mode.codec in ("h264", "h265"):  # OpenCV's V4L2 backend cannot decode these
                if not gstreamer_available():
                    raise KdedgeError("%s delivers %s, which needs OpenCV with GStreamer" % (uri.string, mode.codec),
                                      fix=GST_FIX + "; or pass --input-codec mjpeg / raw")
                cap = cv2.VideoCapture(v4l2_pipeline(uri.location, mode, is_jetson()), cv2.CAP_GSTREAMER)
            else:
                cap = cv2.VideoCapture(uri.location, cv2.CAP_V4L2)
                for prop, value in v4l2_capture_settings(mode, opt):
                    cap.set(getattr(cv2, prop), value if prop != "CAP_PROP_FOURCC" else cv2.VideoWriter_fourcc(*value))
        elif uri.scheme == "rtsp":
            self.live = True
            if gstreamer_available():
                cap = cv2.VideoCapture(rtsp_pipeline(uri.location, opt, is_jetson()), cv2.CAP_GSTREAMER)
            else:
                cap = cv2.VideoCapture(uri.location, cv2.CAP_FFMPEG)
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        else:
            if not os.path.isfile(uri.location):
                raise KdedgeError("input file %s does not exist" % uri.location, fix=USAGE)
            cap = cv2.VideoCapture(uri.location)
        if not cap.isOpened():
            cap.release()
            fix = GST_FIX if uri.scheme in ("csi",) else (
                "check the device exists and is not in use (`kdedge doctor` lists cameras)" if uri.scheme == "v4l2"
                else "check the file plays (e.g. with ffplay) and is a format FFMPEG reads")
            raise KdedgeError("cannot open input %s" % uri.string, fix=fix)
        self.cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else None
        if uri.scheme == "file":
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            self.frame_count = n if n > 0 else None
        return self

    def read(self) -> Tuple[str, Optional[np.ndarray]]:
        ok, frame = self.cap.read()
        if ok and frame is not None:
            self.frames_read += 1
            self._in_pass += 1
            return OK, frame
        if self.uri.scheme != "file":
            return self._fail("%s stopped delivering frames after %d (camera or stream gone)" % (self.uri.string, self.frames_read))
        expected = self.frame_count
        if expected is not None and self._in_pass < expected - 1:
            # Containers may over-report by one frame; fewer than that means the file is damaged.
            return self._fail("%s ended after %d of %d frames: the file is truncated or corrupt"
                              % (self.uri.location, self._in_pass, expected))
        if self._in_pass == 0:
            return self._fail("%s has no decodable frames" % self.uri.location)
        if self.options.loop < 0 or self._loops < self.options.loop:
            import cv2

            self._loops += 1
            self._in_pass = 0
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            return self.read()
        return EOS, None

    _loops = 0
    _in_pass = 0

    def close(self) -> None:
        cap = getattr(self, "cap", None)
        if cap is not None:
            cap.release()
            self.cap = None


class ImageFilesSource(Source):
    """One image file, or every image in a folder in name order."""

    def open(self) -> "ImageFilesSource":
        path = Path(self.uri.location)
        if path.is_dir():
            self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
            if not self.files:
                raise KdedgeError("input folder %s holds no images (%s)" % (path, " ".join(IMAGE_EXTS)))
        elif path.is_file():
            self.files = [path]
        else:
            raise KdedgeError("input %s does not exist" % path, fix=USAGE)
        self.frame_count = len(self.files)
        self.current = None  # type: Optional[Path]
        return self

    def read(self) -> Tuple[str, Optional[np.ndarray]]:
        import cv2

        if self.frames_read >= len(self.files):
            return EOS, None
        self.current = self.files[self.frames_read]
        frame = cv2.imread(str(self.current), cv2.IMREAD_COLOR)
        if frame is None:
            return self._fail("cannot decode image %s" % self.current)
        self.frames_read += 1
        return OK, frame


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


def open_source(uri, options: Optional[VideoOptions] = None) -> Source:
    """Parse `uri` (a string or URI) and return an opened Source; KdedgeError when that fails."""
    uri = uri if isinstance(uri, URI) else parse_uri(uri)
    options = options or VideoOptions()
    if uri.scheme == "test":
        return TestPatternSource(uri, options).open()
    if uri.scheme in ("csi", "v4l2", "rtsp"):
        return CvCaptureSource(uri, options).open()
    if uri.scheme == "file":
        if os.path.isdir(uri.location) or uri.extension in IMAGE_EXTS:
            return ImageFilesSource(uri, options).open()
        return CvCaptureSource(uri, options).open()
    raise KdedgeError("%s cannot be an input (scheme %s)" % (uri.string, uri.scheme),
                      fix="inputs: " + ", ".join(SOURCE_SCHEMES) + "\n" + USAGE)


# ---------------------------------------------------------------------------------------------------
# sinks


class Sink:
    """Base class. `write(frame)` may raise KdedgeError; `streaming` turns False when the user closes
    the window; `close()` finishes the output and must be safe to call twice and after an error."""

    def __init__(self, uri: URI, options: VideoOptions):
        self.uri = uri
        self.options = options
        self.frames_written = 0
        self.frames_safe = 0  # frames in finished output that survives the run (a video counts once closed)
        self.streaming = True
        self.path = None  # type: Optional[str]

    def open(self) -> "Sink":
        return self

    def write(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def saved_text(self) -> str:
        """What of the output survives (said after a failure): how many frames are safe, and where."""
        return "%d frame(s) were written to %s" % (self.frames_safe, self.path or self.uri.string)

    def __enter__(self) -> "Sink":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


class NullSink(Sink):
    def write(self, frame: np.ndarray) -> None:
        self.frames_written += 1
        self.frames_safe = self.frames_written


class DisplaySink(Sink):
    """cv2.imshow in a window; `q` or Esc ends the stream.

    OpenCV's HighGUI (GTK, Qt) must be driven from one thread: `imshow`, `waitKey` and
    `destroyWindow` from different threads hang or crash some builds. The pipeline writes from its
    writer thread and closes the sink from another, so the sink owns a GUI thread that makes every
    HighGUI call; `write` only hands it the newest frame (a display never queues old frames).
    """

    def open(self) -> "DisplaySink":
        import threading

        if not display_available():
            raise KdedgeError("%s: no display (OpenCV GUI: %s, DISPLAY=%r)"
                              % (self.uri.string, cv2_build_info().get("GUI", "?"), os.environ.get("DISPLAY")),
                              fix="use --output null:// or a file, or run on the Jetson's desktop with JetPack's OpenCV")
        self.window = "kdedge %s" % self.uri.location
        self._cond = threading.Condition()
        self._frame = None  # type: Optional[np.ndarray]
        self._closing = False
        self._error = None  # type: Optional[BaseException]
        self.gui_thread = threading.Thread(target=self._gui, name="kdedge-display", daemon=True)
        self.gui_thread.start()
        return self

    def _gui(self) -> None:
        import cv2

        shown = False
        try:
            while True:
                with self._cond:
                    if self._frame is None and not self._closing:
                        self._cond.wait(0.02)
                    frame, self._frame = self._frame, None
                    closing = self._closing
                if frame is not None:
                    cv2.imshow(self.window, frame)
                    shown = True
                if shown:
                    key = cv2.waitKey(1) & 0xFF  # also keeps the window responsive between frames
                    if key in (ord("q"), 27):
                        self.streaming = False
                if closing:
                    break
        except BaseException as exc:  # reported by the next write()
            self._error = exc
            self.streaming = False
        finally:
            if shown:
                try:
                    cv2.destroyWindow(self.window)
                    cv2.waitKey(1)  # lets the GUI backend process the destroy
                except cv2.error:
                    pass

    def write(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise KdedgeError("display %s failed: %s" % (self.uri.string, self._error))
        with self._cond:
            self._frame = frame
            self._cond.notify_all()
        self.frames_written += 1
        self.frames_safe = self.frames_written

    def close(self) -> None:
        thread = getattr(self, "gui_thread", None)
        if thread is None:
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        thread.join(timeout=5.0)


class VideoFileSink(Sink):
    """cv2.VideoWriter into a hidden temp file, renamed to the target on close (always playable).

    cv2.VideoWriter.write reports nothing (FFmpeg only prints "Failed to write frame"), so every
    write is checked another way: the temp file must keep growing, and when it stops while the disk
    is (nearly) full the write has failed (ENOSPC). On close the finished file is opened again and
    its frames counted before it is renamed into place; a file that does not read back (no index:
    the disk filled up while finishing) is removed and the close raises, saying nothing was kept."""

    FULL_BYTES = 64 * 1024  # less free space than this while the file stops growing: the disk is full

    def open(self) -> "VideoFileSink":
        from kdedge.paths import check_writable_dir

        path = Path(self.uri.location)
        check_writable_dir(str(path.parent), "output folder")
        self.path = str(path)
        self.codec = self.options.codec or CODECS.get(self.uri.extension)
        if self.codec is None:
            raise KdedgeError("no codec known for %s" % path.name, fix="use .mp4 (mp4v) or .avi (MJPG), or pass a codec")
        self.tmp = str(path.parent / (".%s.partial%s" % (path.stem, path.suffix)))
        self.writer = None
        self._size = 0  # size of the temp file after the last write that grew it
        self._stalled = 0  # writes since it last grew
        self._failed = None  # type: Optional[str]  # a write failed: the file is incomplete, never kept
        return self

    def write(self, frame: np.ndarray) -> None:
        import cv2

        if self.writer is None:
            h, w = frame.shape[:2]
            self.writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*self.codec), float(self.options.fps), (w, h))
            if not self.writer.isOpened():
                self.writer = None
                self._disk_check(0)
                raise KdedgeError("OpenCV cannot write %s with codec %s" % (self.path, self.codec),
                                  fix="use .mp4 (mp4v) or .avi (MJPG); H.264 needs an OpenCV built with it")
            self.size = (w, h)
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise KdedgeError("frame size changed from %dx%d to %dx%d while writing %s"
                              % (self.size + (frame.shape[1], frame.shape[0], self.path)))
        self.writer.write(frame)
        self.frames_written += 1
        try:
            self._check_growth()
        except KdedgeError as exc:
            self._failed = exc.message
            raise

    def _check_growth(self) -> None:
        try:
            size = os.path.getsize(self.tmp)
        except OSError as exc:  # the temp file vanished or its folder became unreadable
            raise from_os_error(exc, self.tmp, "writing %s" % self.path) from exc
        if size > self._size:
            self._size, self._stalled = size, 0
            return
        self._stalled += 1  # encoders buffer: a few writes without growth are normal, a full disk is not
        if self._stalled >= 2:
            self._disk_check(self.frames_written)

    def _disk_check(self, frames: int) -> None:
        from kdedge.paths import free_bytes

        free = free_bytes(os.path.dirname(self.tmp) or ".")
        if free is not None and free < self.FULL_BYTES:
            raise from_os_error(OSError(errno.ENOSPC, "No space left on device", self.path), self.path,
                                "writing frame %d of %s failed" % (frames, self.path))

    def _frames_in(self, path: str) -> int:
        """Frames a reader finds in the finished file (0: it does not open: no index, unplayable)."""
        import cv2

        cap = cv2.VideoCapture(path)
        try:
            if not cap.isOpened():
                return 0
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            return n if n > 0 else self.frames_written  # a container without a count: it opened, trust it
        finally:
            cap.release()

    def close(self) -> None:
        writer, self.writer = getattr(self, "writer", None), None
        tmp = getattr(self, "tmp", None)
        try:
            if writer is not None:
                writer.release()  # writes the container index: what makes the file playable
                if self.frames_written:
                    found = self._frames_in(tmp)
                    what = None
                    if found < self.frames_written - 1:  # containers may round the count by one frame
                        what = "the finished file reads back with %d of %d frames" % (found, self.frames_written)
                    try:  # a container may read back "fine" from a header written before the disk filled up
                        self._disk_check(self.frames_written)
                    except KdedgeError as exc:
                        what = exc.message
                    what = self._failed or what
                    if what:
                        raise KdedgeError("finishing %s failed: %s" % (self.path, what),
                                          fix="free space on that disk, or write to another one")
                    os.replace(tmp, self.path)
                    self.frames_safe = self.frames_written
        finally:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)

    def saved_text(self) -> str:
        if self.frames_safe:
            return "%s is finished and holds %d frame(s)" % (self.path, self.frames_safe)
        return "no frame of %s was kept (%d written; the unfinished file was removed)" % (self.path, self.frames_written)


class ImageSink(Sink):
    """Frames as images: into a folder (frame_000000.png ...) or, for one path with an image
    extension, that file (later frames get _1, _2 ... suffixes). Each image is encoded in memory,
    written to a hidden temp file and renamed into place, so a failed write (disk full, permission)
    raises with the file's name and leaves no half-written image."""

    def open(self) -> "ImageSink":
        from kdedge.paths import check_writable_dir

        loc = self.uri.location
        self.folder_mode = self.uri.extension not in IMAGE_EXTS
        if self.folder_mode:
            check_writable_dir(loc, "output folder", create=True)
        else:
            check_writable_dir(os.path.dirname(loc) or ".", "output folder")
        self.path = loc
        self.names = None  # type: Optional[List[str]]  # the pipeline may set source names
        return self

    def target(self, index: int) -> str:
        if self.folder_mode:
            name = self.names[index] if self.names and index < len(self.names) else "frame_%06d.png" % index
            return os.path.join(self.path, name)
        if index == 0:
            return self.path
        stem, ext = os.path.splitext(self.path)
        return "%s_%d%s" % (stem, index, ext)

    def write(self, frame: np.ndarray) -> None:
        import cv2

        target = self.target(self.frames_written)
        stem, ext = os.path.splitext(target)
        ext = ext if ext.lower() in IMAGE_EXTS else ".png"
        ok, data = cv2.imencode(ext, frame)
        if not ok:
            raise KdedgeError("cannot encode image %s" % target, fix="use a .png/.jpg/.bmp name")
        tmp = os.path.join(os.path.dirname(target), ".%s.partial%s" % (os.path.basename(stem), ext))
        try:
            with open(tmp, "wb") as f:
                f.write(data.tobytes())
            os.replace(tmp, target)
        except OSError as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise from_os_error(exc, target, "writing image %s failed" % target) from exc
        self.frames_written += 1
        self.frames_safe = self.frames_written

    def saved_text(self) -> str:
        return "%d image(s) written to %s before that are complete" % (self.frames_safe, self.path)


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


def open_sink(uri, options: Optional[VideoOptions] = None) -> Sink:
    """Parse `uri` and return an opened Sink; KdedgeError when that fails."""
    uri = uri if isinstance(uri, URI) else parse_uri(uri)
    options = options or VideoOptions()
    if uri.scheme == "null":
        return NullSink(uri, options).open()
    if uri.scheme == "display":
        return DisplaySink(uri, options).open()
    if uri.scheme == "file":
        if uri.extension in VIDEO_EXTS:
            return VideoFileSink(uri, options).open()
        if uri.extension in IMAGE_EXTS or uri.extension == "" or os.path.isdir(uri.location) or uri.string.endswith("/"):
            return ImageSink(uri, options).open()
        raise KdedgeError("cannot tell what kind of output %s is (extension %r)" % (uri.string, uri.extension), fix=USAGE)
    raise KdedgeError("%s cannot be an output (scheme %s)" % (uri.string, uri.scheme),
                      fix="outputs: " + ", ".join(SINK_SCHEMES) + "\n" + USAGE)
