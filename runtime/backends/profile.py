"""Input-size limits of a backend (a TensorRT engine's optimisation profile) and the tile size that fits.

A TensorRT engine accepts only input shapes inside its profile (min..max per dimension, from the
bundle manifest's `shapes`; 1088x1920 LR at most for the shipped bundles). These pure functions
decide, before TensorRT is called, whether a frame fits and which tile size keeps every tile inside
the profile, so a larger frame is tiled automatically instead of failing inside TensorRT, and a
`--tile` that cannot fit fails with the size and the largest value that would. They run (and are
tested) without TensorRT; `TrtBackend.input_limits()` supplies the profile on a device.

`limits` is ((min_h, min_w), (max_h, max_w)) in LR pixels, or None for a backend without limits.
"""
from __future__ import annotations

from typing import Optional, Tuple

from kdedge.errors import KdedgeError

Limits = Tuple[Tuple[int, int], Tuple[int, int]]


def padded(n: int, multiple: int) -> int:
    """n rounded up to the model's size multiple (the pipeline edge-pads to it)."""
    m = max(int(multiple), 1)
    return -(-int(n) // m) * m


def fits_profile(h: int, w: int, limits: Optional[Limits], multiple: int = 1) -> bool:
    """Whether an (h, w) input, padded to `multiple`, lies inside the profile."""
    if limits is None:
        return True
    (min_h, min_w), (max_h, max_w) = limits
    ph, pw = padded(h, multiple), padded(w, multiple)
    return min_h <= ph <= max_h and min_w <= pw <= max_w


def max_tile(limits: Limits, overlap: int, multiple: int = 1) -> int:
    """The largest tile (LR px) whose tiles, overlap on both sides and padding included, fit the profile max."""
    (_, _), (max_h, max_w) = limits
    m = max(int(multiple), 1)
    return (min(max_h, max_w) // m) * m - 2 * int(overlap)


def choose_tile(h: int, w: int, tile: int, overlap: int, multiple: int, limits: Optional[Limits],
                what: str = "the TensorRT engine profile") -> int:
    """The tile size to use for an h x w frame: `tile` when it fits (0 = whole frames), the largest
    tile that fits when the whole frame does not, or KdedgeError naming the size and --tile."""
    if limits is None:
        return tile
    (min_h, min_w), (max_h, max_w) = limits
    if padded(h, multiple) < min_h or padded(w, multiple) < min_w:
        raise KdedgeError("frame %dx%d (LR, HxW) is smaller than %s's minimum %dx%d" % (h, w, what, min_h, min_w),
                          fix="use a larger input (--input-width/--input-height), or rebuild the engine from a "
                              "bundle exported with a smaller minimum shape")
    whole = not tile or (h <= tile and w <= tile)
    if whole and fits_profile(h, w, limits, multiple):
        return tile
    best = max_tile(limits, overlap, multiple)
    if best < 1:
        raise KdedgeError("%s's maximum %dx%d leaves no room for tiles with %d px overlap" % (what, max_h, max_w, overlap),
                          fix="rebuild the engine from a bundle exported with a larger maximum shape")
    if padded(min(overlap + 1, h, w), multiple) < max(min_h, min_w):
        raise KdedgeError("edge tiles of a %dx%d frame would be smaller than %s's minimum %dx%d"
                          % (h, w, what, min_h, min_w), fix="rebuild the engine with a smaller minimum shape")
    if not tile:
        return best  # the whole frame does not fit: tile to the profile automatically
    if tile > best:
        raise KdedgeError("--tile %d with %d px overlap makes %dx%d inputs, beyond %s's maximum %dx%d (frame %dx%d)"
                          % (tile, overlap, padded(tile + 2 * overlap, multiple), padded(tile + 2 * overlap, multiple),
                             what, max_h, max_w, h, w),
                          fix="use --tile %d or less, or --tile 0 to tile to the profile automatically" % best)
    return tile
