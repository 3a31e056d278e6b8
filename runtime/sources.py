"""Video sources: cameras, streams, video files, images and the test pattern, opened from a URI.

Frames are numpy uint8 BGR (H, W, 3), OpenCV's convention. `Source.read()` returns (status, frame)
with status one of OK, EOS (a clean end), ERROR (a failure: `source.error` says what).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from kdedge.common import parse_size
from kdedge.errors import KdedgeError
from kdedge.runtime.gst import (choose_v4l2_mode, csi_pipeline, input_codec, is_jetson, list_v4l2_modes, rtsp_pipeline,
                                v4l2_capture_settings, v4l2_pipeline)
from kdedge.runtime.uri import (GST_FIX, IMAGE_EXTS, SOURCE_SCHEMES, URI, USAGE, VideoOptions, gstreamer_available,
                                parse_uri)

OK, EOS, ERROR = "OK", "EOS", "ERROR"


def _size(value: Optional[str], what: str) -> Optional[Tuple[int, int]]:
    return parse_size(value, what) if value else None



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
