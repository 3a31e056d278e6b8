"""The small helpers every layer shares, each defined once: atomic file writes, file hashes, the image
extensions kdedge reads, the precision names, and the one way sizes are written (WxH, as in 1920x1080).

It sits at the bottom of the import order with `kdedge.errors` and `kdedge.paths` (pyproject.toml's
layers contract), so training, export and the torch-free runtime all use it. Stdlib only: the Jetson
runtime imports it on Python 3.8.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Optional, Tuple, Union

from kdedge.errors import KdedgeError

PathLike = Union[str, os.PathLike]

# Image files kdedge reads (data sets, calibration, image folders and files as camera/upscale input):
# every one OpenCV's imread decodes on both pip OpenCV and JetPack's build.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

# --precision names. bf16 has no file of its own: OpenVINO computes it from the FP32 file.
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int8_u8s8")
# The precisions a bundle stores as ONNX files (the keys of its manifest's "precisions").
FILE_PRECISIONS = tuple(p for p in PRECISIONS if p != "bf16")

_SIZE = re.compile(r"^(\d+)[xX](\d+)$")


def parse_size(text: str, what: str = "size", max_side: Optional[int] = None) -> Tuple[int, int]:
    """"WxH" (width first, as video sizes are written: 1920x1080) -> (width, height).

    KdedgeError names `what` ("--size", "test:// size") when `text` is not two integers joined by
    x, or, with `max_side`, when a side is outside 1..max_side."""
    m = _SIZE.match(text) if isinstance(text, str) else None
    size = (int(m.group(1)), int(m.group(2))) if m else None
    if size is None or max_side is not None and not all(0 < v <= max_side for v in size):
        bounds = " with both between 1 and %d" % max_side if max_side is not None else ""
        raise KdedgeError("%s must look like WIDTHxHEIGHT%s (e.g. 960x540), got %r" % (what, bounds, text))
    return size


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (weights and ONNX files can be hundreds of MB)."""
    h = hashlib.sha256()
    with open(os.fspath(path), "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write `data` to `path` so that readers only ever see the old or the complete new file: a
    temporary file beside it, fsync, `os.replace`, then fsync of the folder (a `kill -9` or a power
    cut at any moment leaves one or the other, never a truncated file).

    Missing folders are created. The file gets the mode a plain `open()` would give it: an existing
    file keeps its own, a new one 0666 minus the umask. A folder that cannot be created or written
    into raises KdedgeError before anything is written; a failure while writing (a full disk) raises
    the OSError, naming `path`, and leaves the previous file as it was.
    """
    path = Path(path)
    folder = path.parent  # Path("x").parent is Path(".")
    # O_EXCL with mode 0666 lets the kernel apply the umask, as open() does (mkstemp's 0600 would make
    # bundles and results private; reading the umask means setting it, which races other threads).
    tmp = str(folder / (".%s.%s.tmp" % (path.name, secrets.token_hex(6))))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise KdedgeError("cannot write %s: %s" % (path, exc), fix="choose a writable folder") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            if path.exists():
                os.fchmod(f.fileno(), path.stat().st_mode & 0o777)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, str(path))
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write() names no file: the error boundary must say which
        raise
    try:  # make the rename itself durable (POSIX); not every platform can open a folder
        dfd = os.open(str(folder), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path
