"""The synthetic text-and-graphics images QAT learns its ranges on besides photos."""
import numpy as np
import pytest

from kdedge.data.synthetic import graphics_images

pytest.importorskip("cv2")


def test_graphics_are_reproducible_per_seed_and_differ_across_seeds():
    a, b = graphics_images(3, size=128, seed=5), graphics_images(3, size=128, seed=5)
    assert all(x.dtype == np.uint8 and x.shape == (128, 128, 3) for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    other = graphics_images(3, size=128, seed=6)
    assert not any(np.array_equal(x, y) for x, y in zip(a, other))  # a validation seed never repeats training images


def test_graphics_hold_sharp_edges_on_flat_colour():
    """What photos lack and ranges clip on: near-full-range steps between neighbours, large flat areas."""
    for img in graphics_images(6, size=256, seed=0):
        y = img.astype(np.int16).mean(axis=2)
        assert np.abs(np.diff(y, axis=1)).max() > 120  # sharp high-contrast edges
        _, counts = np.unique(img.reshape(-1, 3), axis=0, return_counts=True)
        assert counts.max() > 0.2 * y.size  # a flat background
