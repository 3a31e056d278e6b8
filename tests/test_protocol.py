"""The evaluation protocol: MATLAB bicubic, MATLAB Y, PSNR/SSIM, datasets, kdedge eval."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdedge.data.color import gray_to_y, rgb2ycbcr, rgb_to_y, ycbcr2rgb
from kdedge.data.datasets import load_hr_images
from kdedge.data.images import read_image, write_image
from kdedge.data.imresize import bicubic_downscale, bicubic_upscale, imresize, modcrop
from kdedge.errors import KdedgeError
from kdedge.metrics import psnr, ssim


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_matches_matlab_lr_images(shared_dir, scale):
    """kdedge's LR of Set5 equals MATLAB's within one grey level on > 99% of pixels."""
    lr_dir = shared_dir / "data" / "test" / "Set5_LR_matlab" / ("x%d" % scale)
    if not lr_dir.is_dir():
        pytest.skip("needs ../shared/data/test/Set5_LR_matlab")
    total = close = exact = 0
    for hr_path in sorted((shared_dir / "data" / "test" / "Set5").glob("*.png")):
        ours = bicubic_downscale(read_image(hr_path), scale)
        matlab = read_image(lr_dir / ("%sx%d.bmp" % (hr_path.stem, scale)))
        assert ours.shape == matlab.shape
        diff = np.abs(ours.astype(int) - matlab.astype(int))
        total += diff.size
        close += int((diff <= 1).sum())
        exact += int((diff == 0).sum())
    assert close / total > 0.99
    assert exact / total > 0.99  # measured: 99.4% (x2), 100% (x3), 99.97% (x4)


def test_imresize_constant_image_stays_constant():
    img = np.full((24, 36, 3), 77, np.uint8)
    assert np.all(imresize(img, 0.5) == 77)
    assert np.all(imresize(img, 3) == 77)


def test_imresize_differs_from_opencv_bicubic():
    """The reason it exists: OpenCV's bicubic (a = -0.75, no antialias) is another function."""
    import cv2

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    ours = imresize(img, 0.5)
    theirs = cv2.resize(img, (32, 32), interpolation=cv2.INTER_CUBIC)
    assert np.abs(ours.astype(int) - theirs.astype(int)).mean() > 1.0


@settings(max_examples=25, deadline=None)
@given(h=st.integers(4, 40), w=st.integers(4, 40), scale=st.sampled_from([2, 3, 4]))
def test_bicubic_shapes(h, w, scale):
    img = np.zeros((h * scale + scale - 1, w * scale + 1), np.uint8)
    lr = bicubic_downscale(img, scale)
    assert lr.shape == (h, w)
    assert bicubic_upscale(lr, scale).shape == modcrop(img, scale).shape


def test_matlab_y_known_values():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    y = rgb_to_y(rgb)
    np.testing.assert_allclose(y[0], [16.0, 235.0, 16.0 + 65.481])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=3, max_size=3))
def test_ycbcr_round_trip(rgb):
    img = np.array(rgb, np.uint8).reshape(1, 1, 3)
    back = ycbcr2rgb(rgb2ycbcr(img)) * 255.0
    np.testing.assert_allclose(back, img.astype(float), atol=1e-6)


def test_gray_conventions():
    g = np.array([[0, 255]], np.uint8)
    np.testing.assert_allclose(gray_to_y(g, "gray-as-y"), [[0, 255]])
    np.testing.assert_allclose(gray_to_y(g, "gray-as-rgb"), [[16, 235]])
    with pytest.raises(ValueError):
        gray_to_y(g, "luma")


def test_psnr_and_ssim_basics():
    rng = np.random.default_rng(1)
    a = rng.uniform(16, 235, (48, 48))
    assert psnr(a, a) == float("inf")
    assert ssim(a, a) == pytest.approx(1.0)
    b = a + 1.0  # MSE 1 -> 48.13 dB
    assert psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2), abs=1e-9)
    smooth = np.tile(np.linspace(16, 235, 48), (48, 1))
    assert ssim(smooth, smooth + rng.normal(0, 20, smooth.shape)) < 0.5
    # shaving removes the border: a difference only at the border does not count
    c = a.copy()
    c[0, :] += 50
    assert psnr(a, c, shave=2) == float("inf")


def test_read_image_modes(tmp_path):
    import cv2

    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[..., 0] = 200  # red
    write_image(tmp_path / "rgb.png", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), rgb)
    gray16 = np.full((8, 10), 257 * 100, np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    g = read_image(tmp_path / "g16.png")
    assert g.dtype == np.uint8 and g.shape == (8, 10) and g[0, 0] == 100
    bgra = np.zeros((8, 10, 4), np.uint8)
    bgra[..., 2] = 50
    bgra[..., 3] = 128
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    with pytest.warns(UserWarning, match="alpha"):
        img = read_image(tmp_path / "rgba.png")
    assert img.shape == (8, 10, 3) and img[0, 0, 0] == 50


def test_dataset_skips_bad_files_and_names_them(tmp_path):
    write_image(tmp_path / "good.png", np.zeros((32, 32, 3), np.uint8))
    write_image(tmp_path / "tiny.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = load_hr_images(tmp_path, scale=2, min_size=16)
    assert [i.name for i in images] == ["good"]
    text = " ".join(str(w.message) for w in caught)
    assert "broken.png" in text and "tiny.png" in text


def test_empty_or_missing_dataset_is_an_error(tmp_path):
    with pytest.raises(KdedgeError, match="no images"):
        load_hr_images(tmp_path)
    with pytest.raises(KdedgeError, match="does not exist"):
        load_hr_images(tmp_path / "nope")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(KdedgeError, match="no usable image"):
        load_hr_images(tmp_path)


def _kdedge(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kdedge", *args], capture_output=True, text=True, cwd=cwd)


def test_eval_bicubic_reproduces_published_set5_and_set14(shared_dir):
    out = _kdedge("eval", "--model", "bicubic", "--data", str(shared_dir / "data/test/Set5"), "--scale", "2", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert abs(result["psnr_y"] - 33.66) <= 0.02
    assert len(result["images"]) == 5 and all("ssim_y" in r for r in result["images"])
    out = _kdedge("eval", "--model", "bicubic", "--data", str(shared_dir / "data/test/Set14"), "--scale", "2", "--json")
    assert abs(json.loads(out.stdout)["psnr_y"] - 30.24) <= 0.03


def test_eval_on_generated_images_and_crops(tmp_path):
    rng = np.random.default_rng(3)
    data = tmp_path / "hr"
    for i in range(2):
        base = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
        write_image(data / ("img%d.png" % i), np.kron(base, np.ones((6, 6, 1), np.uint8)))
    out = _kdedge("eval", "--model", "bicubic", "--data", str(data), "--scale", "3", "--json", "--crops", str(tmp_path / "crops"))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert 10 < result["psnr_y"] < 60
    assert sorted(p.name for p in (tmp_path / "crops").iterdir()) == ["img0_x3.png", "img1_x3.png"]


def test_eval_bad_input_exits_nonzero_with_message(tmp_path):
    out = _kdedge("eval", "--model", "bicubic", "--data", str(tmp_path / "missing"), "--scale", "2")
    assert out.returncode == 1 and "does not exist" in out.stderr and "Traceback" not in out.stderr
    out = _kdedge("eval", "--model", "bicubic", "--data", str(tmp_path), "--scale", "2")
    assert out.returncode == 1 and "no images" in out.stderr
    out = _kdedge("eval", "--data", str(tmp_path))
    assert out.returncode == 1 and "--model" in out.stderr


def test_config_file_and_flag_override(tmp_path):
    rng = np.random.default_rng(4)
    write_image(tmp_path / "hr" / "a.png", rng.integers(0, 256, (48, 48, 3)).astype(np.uint8))
    cfg = tmp_path / "eval.yaml"
    cfg.write_text("model: bicubic\nscale: 4\ndata: %s\njson: true\n" % (tmp_path / "hr"))
    out = _kdedge("eval", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["scale"] == 4
    out = _kdedge("eval", "--config", str(cfg), "--scale", "2")
    assert json.loads(out.stdout)["scale"] == 2
    cfg.write_text("model: bicubic\nscal: 4\n")
    out = _kdedge("eval", "--config", str(cfg))
    assert out.returncode == 1 and "unknown option 'scal'" in out.stderr


def test_import_kdedge_is_light():
    code = "import sys, kdedge, kdedge.cli; heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'cv2', 'matplotlib') if m in sys.modules]; print(heavy)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_cli_help_lists_commands_and_rejects_unknown():
    out = _kdedge("--help")
    assert out.returncode == 0 and "eval" in out.stdout and "distill" in out.stdout
    out = _kdedge("frobnicate")
    assert out.returncode == 2 and "unknown command" in out.stderr
