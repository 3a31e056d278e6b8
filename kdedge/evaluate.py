"""`kdedge eval`'s engine: run any upscaler over a folder under the standard SR protocol.

Protocol (../shared/data/README.md): HR mod-cropped to the scale; LR = MATLAB bicubic of HR
(`kdedge.data.imresize`); SR rounded to uint8; PSNR/SSIM on MATLAB Y with `scale` pixels shaved.
One function, `evaluate`, serves torch models, ONNX files, bundles and bicubic alike, so every
number kdedge prints is measured the same way.

ONNX files and bundles run through the runtime's own backends (`BackendUpscaler` over
`kdedge.runtime.backends`: ONNX Runtime or OpenVINO on the CPU), the code the camera runs, so an eval
measures what ships; every result names its `backend`, `precision` and `engine`.

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
    backend_name = precision = engine = None  # numpy, no inference engine

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
        self.backend_name = "torch"
        dtypes = {str(p.dtype) for p in model.module.parameters()}
        self.precision = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}.get(
            dtypes.pop() if len(dtypes) == 1 else "", None)
        self.engine = "torch-%s" % device

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            y = self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device))
        return y.float().cpu().numpy()


class BackendUpscaler:
    """An ONNX model run by one of the runtime's backends (`kdedge.runtime.backends`): the code the camera
    runs, so `kdedge eval` measures what ships. Activates the backend at once (a missing engine or an
    unreadable file fails here, not mid-run); `close()` (or a with-block, or garbage collection) frees it."""

    def __init__(self, backend, scale: Optional[int], color: str, name: str):
        self.scale, self.color, self.name = scale, color, name
        self.backend = backend.activate()
        self.input_name = next(iter(backend.input_metadata()))
        self.backend_name = getattr(backend, "backend_name", backend.name)
        self.precision = backend.precision
        self.engine = backend.label  # e.g. "openvino-cpu 2 threads int8"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.backend.infer({self.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return next(iter(out.values()))  # SR models have one output

    def close(self) -> None:
        self.backend.deactivate()

    def __enter__(self) -> "BackendUpscaler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.deactivate()


def _check_backend(backend: str) -> str:
    from kdedge.runtime.backends import CPU_BACKENDS

    if backend not in CPU_BACKENDS:
        raise KdedgeError("kdedge eval runs ONNX models on a CPU backend, not %r" % backend,
                          fix="use --backend " + " or --backend ".join(sorted(CPU_BACKENDS)))
    return backend


def bundle_upscaler(bundle, precision: Optional[str] = None, backend: str = "ort-cpu",
                    threads: Optional[int] = None) -> BackendUpscaler:
    """One precision of a bundle (a folder, a shipped name, or a loaded Bundle). The default is the
    bundle's default precision, not `auto`'s pick per backend, so a number always says what it measured."""
    from kdedge.runtime.backends import create_backend
    from kdedge.runtime.bundle import Bundle, load_bundle

    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    be = create_backend(bundle, _check_backend(backend), precision or bundle.default_precision, threads)
    return BackendUpscaler(be, bundle.scale, bundle.color, "%s[%s]" % (bundle.path.name, be.precision))


def _onnx_facts(path: Path) -> Dict[str, Any]:
    """Input channels and whether the graph is quantized (Q/DQ or QLinear nodes) of an ONNX file."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: the file is not an ONNX model
        raise KdedgeError("%s is not a loadable ONNX model (%s: %s)" % (path, type(exc).__name__, exc),
                          fix="give the model.onnx written by `kdedge export`, or the bundle folder") from exc
    if not model.graph.input:  # an empty file parses as an empty model
        raise KdedgeError("%s is not a loadable ONNX model (it has no inputs: empty or truncated)" % path,
                          fix="give the model.onnx written by `kdedge export`, or the bundle folder")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    quantized = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") or n.op_type.startswith("QLinear")
                    for n in model.graph.node)
    return {"channels": dims[1].dim_value if len(dims) == 4 else 0, "int8": quantized}


def onnx_upscaler(path: Union[str, Path], scale: Optional[int] = None, color: Optional[str] = None,
                  backend: str = "ort-cpu", precision: Optional[str] = None, threads: Optional[int] = None,
                  name: Optional[str] = None) -> BackendUpscaler:
    """A bare ONNX file on a CPU backend. `color` defaults to what its input channels say; `precision`
    names what the file holds (default: int8 when it has Q/DQ nodes, else fp32) and, on OpenVINO,
    picks the float compute (`bf16` runs an FP32 file in bf16)."""
    from kdedge.runtime.backends import open_model

    path = Path(path)
    if not path.is_file():
        raise KdedgeError("ONNX file %s does not exist" % path)
    facts = _onnx_facts(path)
    kinds = ("int8", "int8_u8s8") if facts["int8"] else ("fp32", "fp16", "bf16")
    precision = precision or kinds[0]
    if precision not in kinds:
        raise KdedgeError("%s is %s quantized (Q/DQ) graph; precision %r does not describe it"
                          % (path, "a" if facts["int8"] else "not a", precision),
                          fix="pass one of: %s (or omit --precision)" % ", ".join(kinds))
    if precision == "bf16" and backend != "openvino":
        raise KdedgeError("bf16 is computed by OpenVINO from the FP32 file; %s has no bf16 path" % backend,
                          fix="use --backend openvino, or --precision fp32")
    be = open_model(path, _check_backend(backend), threads=threads, precision=precision)
    return BackendUpscaler(be, scale, color or ("y" if facts["channels"] == 1 else "rgb"), name or path.name)


def load_upscaler(spec: str, weights: Optional[str] = None, scale: Optional[int] = None,
                  device: str = "cpu", precision: Optional[str] = None, backend: Optional[str] = None,
                  threads: Optional[int] = None):
    """`bicubic`, an ONNX file, a bundle folder or a shipped bundle's name (`default`, `fast`), or
    anything `kdedge.models.loading.load_model` takes. ONNX files and bundles run on `backend`
    (ort-cpu when None, or openvino); torch models take none."""
    from kdedge.runtime.bundle import shipped_bundles

    path = Path(spec)
    is_bundle = (path.is_dir() and (path / "manifest.json").is_file()) or (not path.exists() and spec in shipped_bundles())
    is_onnx = path.suffix.lower() == ".onnx"
    if backend is not None and not (is_bundle or is_onnx):
        raise KdedgeError("--backend applies to ONNX files and bundles; %s does not run on one" % spec,
                          fix="drop --backend (torch models take --device), or export the model first: kdedge export")
    if spec == "bicubic":
        if not scale:
            raise KdedgeError("--model bicubic needs --scale")
        return BicubicUpscaler(scale)
    if path.is_dir() and not (path / "manifest.json").is_file():
        raise KdedgeError("%s is a folder without manifest.json: not a bundle" % path,
                          fix="give the folder written by `kdedge export --out DIR`, or a model file")
    backend = backend or "ort-cpu"
    if is_bundle:
        up = bundle_upscaler(spec, precision, backend, threads)
        if scale and scale != up.scale:
            up.close()
            raise KdedgeError("bundle %s is x%d, --scale asks for x%d" % (spec, up.scale, scale))
        return up
    if is_onnx:
        if not path.is_file():
            raise KdedgeError("ONNX file %s does not exist" % path)
        if not scale:
            raise KdedgeError("evaluating a bare ONNX file needs --scale (a bundle carries it)")
        return onnx_upscaler(path, scale, backend=backend, precision=precision, threads=threads)
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
        "backend": getattr(upscaler, "backend_name", None),
        "precision": getattr(upscaler, "precision", None),
        "engine": getattr(upscaler, "engine", None),
        "psnr_y": float(np.mean([r["psnr_y"] for r in rows])),
        "ssim_y": float(np.mean([r["ssim_y"] for r in rows])),
        "images": rows,
    }
