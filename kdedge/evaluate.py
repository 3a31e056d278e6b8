"""`kdedge eval`'s engine: run any upscaler over a folder under the standard SR protocol.

Protocol (../shared/data/README.md): HR mod-cropped to the scale; LR = MATLAB bicubic of HR
(`kdedge.data.imresize`); SR rounded to uint8; PSNR/SSIM on MATLAB Y with `scale` pixels shaved.
One function, `evaluate`, serves torch models, ONNX files, bundles and bicubic alike, so every
number kdedge prints is measured the same way.

An *upscaler* is anything with `scale`, `color` ("y" or "rgb"), `name` and
`__call__(x: float32 N x C x H x W in [0, 1]) -> N x C x sH x sW`, see `load_upscaler`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from kdedge.data.color import gray_to_y, rgb2ycbcr, rgb_to_y, ycbcr2rgb
from kdedge.data.datasets import load_hr_images
from kdedge.data.imresize import bicubic_downscale, bicubic_upscale, imresize, modcrop
from kdedge.errors import KdedgeError
from kdedge.metrics import psnr, ssim

GRAY_CONVENTIONS = ("gray-as-y", "gray-as-rgb")


class BicubicUpscaler:
    """MATLAB bicubic upscaling: the baseline row of every SR table."""

    color = "rgb"
    name = "bicubic"

    def __init__(self, scale: int):
        self.scale = scale


class TorchUpscaler:
    """A torch `SRModel` behind the numpy upscaler interface."""

    def __init__(self, model, device: str = "cpu", name: Optional[str] = None):
        self.model = model.eval().to(device)
        self.device = device
        self.scale = model.scale
        self.color = model.color
        self.name = name or model.arch

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            y = self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device))
        return y.float().cpu().numpy()


class OnnxUpscaler:
    """An ONNX file (or one precision of a kdedge bundle) run with ONNX Runtime on the CPU."""

    def __init__(self, path: Union[str, Path], scale: int, color: str, name: Optional[str] = None, threads: int = 0):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types per failure
            raise KdedgeError("%s is not a loadable ONNX model: %s" % (path, exc)) from exc
        self.input_name = self.session.get_inputs()[0].name
        self.scale, self.color = scale, color
        self.name = name or Path(path).name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def _onnx_input_channels(path: Path):
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
        dims = model.graph.input[0].type.tensor_type.shape.dim
    except Exception as exc:  # DecodeError for garbage, IndexError for an empty file (no inputs)
        raise KdedgeError("%s is not a loadable ONNX model (%s: %s)" % (path, type(exc).__name__, exc),
                          fix="give the model.onnx written by `kdedge export`, or the bundle folder") from exc
    return dims[1].dim_value if len(dims) == 4 else 0


def load_upscaler(spec: str, weights: Optional[str] = None, scale: Optional[int] = None,
                  device: str = "cpu", precision: Optional[str] = None):
    """`bicubic`, an ONNX file, a bundle folder, or anything `kdedge.models.loading.load_model` takes."""
    path = Path(spec)
    if spec == "bicubic":
        if not scale:
            raise KdedgeError("--model bicubic needs --scale")
        return BicubicUpscaler(scale)
    if not path.exists() and "/" not in spec:  # a shipped bundle's name (default, fast), as camera/upscale/bench take
        from kdedge.runtime.bundle import shipped_bundles

        path = shipped_bundles().get(spec, path)
    if path.is_dir() and not (path / "manifest.json").is_file():
        raise KdedgeError("%s is a folder without manifest.json: not a bundle" % path,
                          fix="give the folder written by `kdedge export --out DIR`, or a model file")
    if path.is_dir() and (path / "manifest.json").is_file():
        from kdedge.runtime.bundle import load_bundle

        bundle = load_bundle(path)
        precision = precision or bundle.default_precision
        model_path = bundle.model_path(precision)
        if scale and scale != bundle.scale:
            raise KdedgeError("bundle %s is x%d, --scale asks for x%d" % (path, bundle.scale, scale))
        return OnnxUpscaler(model_path, bundle.scale, bundle.color, name="%s[%s]" % (path.name, precision))
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise KdedgeError("ONNX file %s does not exist" % path)
        if not scale:
            raise KdedgeError("evaluating a bare ONNX file needs --scale (a bundle carries it)")
        channels = _onnx_input_channels(path)
        return OnnxUpscaler(path, scale, "y" if channels == 1 else "rgb")
    from kdedge.models.loading import load_model

    model = load_model(spec, weights=weights, scale=scale, device=device)
    if scale and model.scale != scale:
        raise KdedgeError("%s is an x%d model, --scale asks for x%d" % (weights or spec, model.scale, scale),
                          fix="pass --scale %d or weights trained for x%d" % (model.scale, scale))
    return TorchUpscaler(model, device=device, name=spec)


def super_resolve(upscaler, lr: np.ndarray, gray_convention: str = "gray-as-y") -> Dict[str, np.ndarray]:
    """SR one uint8 LR image. Returns `y` (float Y of the uint8-rounded SR, [0, 255] scale) and
    `image` (uint8 SR image for viewing; Y students get bicubic chroma)."""
    s = upscaler.scale
    gray = lr.ndim == 2
    if isinstance(upscaler, BicubicUpscaler):
        out = bicubic_upscale(lr, s)
        y = (gray_to_y(out, gray_convention) if gray else rgb_to_y(out))
        return {"y": y, "image": out}
    if upscaler.color == "y":
        if gray:
            y_in = gray_to_y(lr, gray_convention) / 255.0
        else:
            ycbcr = rgb2ycbcr(lr)
            y_in = ycbcr[..., 0] / 255.0
        y_out = upscaler(y_in[None, None].astype(np.float32))[0, 0]
        y_sr = np.clip(np.round(y_out.astype(np.float64) * 255.0), 0, 255)
        if gray:
            return {"y": y_sr, "image": y_sr.astype(np.uint8)}
        cbcr = imresize(ycbcr[..., 1:], output_shape=y_sr.shape)
        rgb = ycbcr2rgb(np.concatenate([y_sr[..., None], cbcr], axis=2))
        image = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
        return {"y": y_sr, "image": image}
    rgb_in = np.repeat(lr[..., None], 3, axis=2) if gray else lr
    x = rgb_in.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    out = upscaler(x)[0].transpose(1, 2, 0)
    image = np.clip(np.round(out.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    y = rgb_to_y(image)
    if gray and gray_convention == "gray-as-y":
        y = (y - 16.0) * (255.0 / 219.0)  # back to the grey scale the ground truth is on
    return {"y": y, "image": image}


def _save_crop_strip(path: Path, panels: List[np.ndarray], crop: int = 96) -> None:
    from kdedge.data.images import write_image

    h, w = panels[-1].shape[:2]
    c = min(crop, h, w)
    top, left = (h - c) // 2, (w - c) // 2
    tiles = []
    for p in panels:
        t = p[top: top + c, left: left + c]
        if t.ndim == 2:
            t = np.repeat(t[..., None], 3, axis=2)
        tiles.append(t)
        tiles.append(np.full((c, 2, 3), 255, np.uint8))
    write_image(path, np.concatenate(tiles[:-1], axis=1))


def evaluate(upscaler, data: Union[str, Path], gray_convention: str = "gray-as-y",
             crops_dir: Optional[Union[str, Path]] = None, progress: bool = True) -> Dict[str, Any]:
    """Mean and per-image Y-PSNR / SSIM of `upscaler` on the HR images of `data`."""
    if gray_convention not in GRAY_CONVENTIONS:
        raise KdedgeError("unknown grayscale convention %r" % gray_convention, fix="use one of %s" % (GRAY_CONVENTIONS,))
    s = upscaler.scale
    images = load_hr_images(data, scale=s, min_size=8 * s)
    rows = []
    iterator = images
    if progress:
        try:
            from tqdm import tqdm

            iterator = tqdm(images, desc="eval %s" % upscaler.name, unit="img", leave=False)
        except ImportError:
            pass
    for img in iterator:
        hr = modcrop(img.pixels, s)
        lr = bicubic_downscale(hr, s)
        result = super_resolve(upscaler, lr, gray_convention)
        hr_y = gray_to_y(hr, gray_convention) if hr.ndim == 2 else rgb_to_y(hr)
        rows.append({
            "name": img.name,
            "psnr_y": psnr(result["y"], hr_y, shave=s),
            "ssim_y": ssim(result["y"], hr_y, shave=s),
        })
        if crops_dir is not None:
            panels = [bicubic_upscale(lr, s), result["image"], hr]
            _save_crop_strip(Path(crops_dir) / ("%s_x%d.png" % (img.name, s)), panels)
    return {
        "model": upscaler.name,
        "data": str(data),
        "scale": s,
        "color": upscaler.color,
        "protocol": "MATLAB-bicubic LR, uint8 SR, MATLAB Y, shave=%d, %s" % (s, gray_convention),
        "psnr_y": float(np.mean([r["psnr_y"] for r in rows])),
        "ssim_y": float(np.mean([r["ssim_y"] for r in rows])),
        "images": rows,
    }
