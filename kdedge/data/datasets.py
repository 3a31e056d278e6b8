"""Folders of HR images -> the list of images a run uses, with bad files named, not fatal.

Unreadable and too-small files are skipped with one warning that names them; a folder that ends
up empty is an error (a silent empty evaluation would print a meaningless mean).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Union

import numpy as np

from kdedge.common import IMAGE_EXTENSIONS
from kdedge.data.images import read_image
from kdedge.errors import KdedgeError


@dataclass
class HRImage:
    name: str
    path: Path
    pixels: np.ndarray  # uint8, H x W or H x W x 3 (RGB)


def find_images(folder: Union[str, Path]) -> List[Path]:
    """Image files directly in `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.exists():
        raise KdedgeError("data folder %s does not exist" % folder, fix="check the path")
    if not folder.is_dir():
        raise KdedgeError("%s is not a folder" % folder, fix="give a folder of images")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def load_hr_images(folder: Union[str, Path], scale: int = 1, min_size: int = 0) -> List[HRImage]:
    """Read every image of a folder; skip (and name) unreadable ones and ones smaller than
    `min_size` pixels on a side after mod-cropping to `scale`."""
    paths = find_images(folder)
    if not paths:
        raise KdedgeError("data folder %s holds no images (%s)" % (folder, ", ".join(IMAGE_EXTENSIONS)),
                          fix="point --data at a folder of HR images")
    images, unreadable, small = [], [], []
    for path in paths:
        try:
            pixels = read_image(path)
        except KdedgeError:
            unreadable.append(path.name)
            continue
        h, w = pixels.shape[:2]
        h, w = h - h % scale, w - w % scale
        if min(h, w) < max(min_size, scale):
            small.append(path.name)
            continue
        images.append(HRImage(path.stem, path, pixels))
    if unreadable:
        warnings.warn("%s: skipped %d unreadable image(s): %s" % (folder, len(unreadable), ", ".join(unreadable)), stacklevel=2)
    if small:
        warnings.warn("%s: skipped %d image(s) smaller than %d px: %s" % (folder, len(small), max(min_size, scale), ", ".join(small)), stacklevel=2)
    if not images:
        raise KdedgeError("data folder %s has no usable image (%d unreadable, %d smaller than %d px)"
                          % (folder, len(unreadable), len(small), max(min_size, scale)),
                          fix="lower --patch (training needs patch x scale px on a side), or add larger images" if small else None)
    return images
