"""Camera-like degradations for training LR images: blur, sensor noise, JPEG (optional).

The standard protocol's LR is a clean MATLAB bicubic, but a camera's frames are blurred by optics,
noisy and compressed. Training on a mix makes a student robust to what it will see on a Jetson.
Applied to uint8 LR images *after* the bicubic downscale; each step is drawn at random per image
from a seeded generator, so a run is reproducible. OpenCV does the work (Gaussian blur, JPEG codec).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np


@dataclass
class Degradation:
    blur_prob: float = 0.0  # chance of a Gaussian blur
    blur_sigma: Tuple[float, float] = (0.2, 1.2)  # its sigma range, LR pixels
    noise_prob: float = 0.0  # chance of Gaussian noise
    noise_sigma: Tuple[float, float] = (1.0, 8.0)  # its sigma range, grey levels
    jpeg_prob: float = 0.0  # chance of JPEG compression
    jpeg_quality: Tuple[int, int] = (40, 95)

    @property
    def active(self) -> bool:
        return max(self.blur_prob, self.noise_prob, self.jpeg_prob) > 0

    def __call__(self, lr: np.ndarray, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        import cv2

        rng = rng or np.random.default_rng()
        out = lr
        if rng.random() < self.blur_prob:
            sigma = rng.uniform(*self.blur_sigma)
            out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
        if rng.random() < self.noise_prob:
            sigma = rng.uniform(*self.noise_sigma)
            noisy = out.astype(np.float32) + rng.normal(0.0, sigma, out.shape).astype(np.float32)
            out = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
        if rng.random() < self.jpeg_prob:
            quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
            bgr = out[..., ::-1] if out.ndim == 3 else out
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
                out = np.ascontiguousarray(dec[..., ::-1]) if dec.ndim == 3 else dec
        return out
