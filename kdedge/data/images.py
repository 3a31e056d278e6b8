"""Reading images the way the protocol needs them: uint8, RGB or single-channel, handled explicitly.

OpenCV reads every format we accept (`kdedge.common.IMAGE_EXTENSIONS`: png, jpg, bmp, tiff, webp,
ppm/pgm) at its native depth, including 16-bit RGB PNGs that PIL would silently truncate. 16-bit
images are rounded to 8 bits (x / 257), alpha is dropped (SR datasets are opaque; a translucent
image would need a background we cannot guess, so we say so in a warning), grayscale stays
single-channel (the protocol has two conventions for it).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np

from kdedge.common import atomic_write_bytes
from kdedge.errors import KdedgeError


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as uint8: H x W (grayscale) or H x W x 3 (RGB order)."""
    import cv2

    path = str(path)
    if not os.path.isfile(path):
        raise KdedgeError("image %s does not exist" % path)
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise KdedgeError("%s is not a readable image (corrupt or unsupported format)" % path,
                          fix="re-export it as PNG, or remove it from the folder")
    if img.dtype == np.uint16:
        img = np.clip(np.round(img.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise KdedgeError("%s has pixel type %s; kdedge reads 8- and 16-bit images" % (path, img.dtype))
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        if img.shape[2] == 4:
            if img[:, :, 3].min() < 255:
                warnings.warn("%s: alpha channel dropped (SR works on opaque RGB)" % path, stacklevel=2)
            img = img[:, :, :3]
        img = np.ascontiguousarray(img[:, :, ::-1])  # BGR -> RGB
    return img


def write_image(path: Union[str, Path], img: np.ndarray) -> None:
    """Write a uint8 RGB or grayscale image (PNG by extension), atomically."""
    import cv2

    path = Path(path)
    data = img[:, :, ::-1] if img.ndim == 3 else img
    ok, buf = cv2.imencode(path.suffix or ".png", np.ascontiguousarray(data))
    if not ok:
        raise KdedgeError("could not encode %s" % path)
    atomic_write_bytes(path, buf.tobytes())
