import numpy as np

from kdedge.data.degrade import Degradation
from kdedge.metrics import psnr


def _image():
    y, x = np.mgrid[0:64, 0:64]
    base = (128 + 100 * np.sin(x / 3.0) * np.cos(y / 5.0)).astype(np.uint8)
    return np.stack([base, base[::-1], base[:, ::-1]], axis=2)


def test_no_degradation_is_identity():
    img = _image()
    d = Degradation()
    assert not d.active
    np.testing.assert_array_equal(d(img, np.random.default_rng(0)), img)


def test_each_degradation_changes_the_image_and_is_seeded():
    img = _image()
    for kwargs in ({"blur_prob": 1.0}, {"noise_prob": 1.0}, {"jpeg_prob": 1.0, "jpeg_quality": (20, 30)}):
        d = Degradation(**kwargs)
        a = d(img, np.random.default_rng(5))
        b = d(img, np.random.default_rng(5))
        assert a.shape == img.shape and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
        assert 15 < psnr(a.astype(float), img.astype(float)) < 60, kwargs
