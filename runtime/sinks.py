"""Video sinks: a display window, a video file, images, or nothing, opened from a URI.

Every write is checked. Video files are written to a hidden temp file and renamed on close, so an
interrupted run leaves either nothing or a finished, playable file, never a file without its index.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Optional

import numpy as np

from kdedge.errors import KdedgeError, from_os_error
from kdedge.runtime.uri import (IMAGE_EXTS, SINK_SCHEMES, URI, USAGE, VIDEO_EXTS, VideoOptions, cv2_build_info,
                                display_available, parse_uri)

CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


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
