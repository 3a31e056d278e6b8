"""Losses of distillation: pixel losses (to ground truth or to the teacher) and feature distillation.

- `pixel_loss`: L1 or Charbonnier per sample, averaged over the samples a mask selects (so images
  without ground truth simply drop out of the ground-truth term).
- `FeatureDistiller`: forward hooks on chosen student and teacher layers; each student feature goes
  through a learned 1x1 conv adapter to the teacher's width (FitNets, Romero et al. 2015) and is
  compared with L1, normalised by the teacher feature's mean magnitude so the weight means the same
  thing whatever range the teacher works in (RLFN works in [0, 255]).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from kdedge.errors import KdedgeError

CHARBONNIER_EPS = 1e-3


def pixel_loss(kind: str, pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    diff = pred.float() - target.float()
    if kind == "l1":
        per_pixel = diff.abs()
    elif kind == "charbonnier":
        per_pixel = torch.sqrt(diff * diff + CHARBONNIER_EPS ** 2)
    else:
        raise ValueError("unknown loss %r" % kind)
    per_sample = per_pixel.flatten(1).mean(dim=1)
    if mask is None:
        return per_sample.mean()
    return (per_sample * mask).sum() / mask.sum().clamp(min=1.0)


def parse_pairs(spec: str) -> List[Tuple[str, str]]:
    """'body.3=body.2,tail=upsampler.0' -> [(student layer, teacher layer), ...]."""
    pairs = []
    for item in filter(None, (p.strip() for p in spec.split(","))):
        if "=" not in item:
            raise KdedgeError("feature pair %r is not student_layer=teacher_layer" % item)
        s, t = (x.strip() for x in item.split("=", 1))
        pairs.append((s, t))
    return pairs


class _Grab:
    def __init__(self, module: nn.Module):
        self.value = None
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        self.value = output


class FeatureDistiller(nn.Module):
    """Learned 1x1 adapters from student features to teacher features; `loss()` after both forwards."""

    def __init__(self, student: nn.Module, teacher: nn.Module, pairs: List[Tuple[str, str]], probe: torch.Tensor,
                 teacher_fn=None):
        super().__init__()
        s_mods, t_mods = dict(student.named_modules()), dict(teacher.named_modules())
        for s, t in pairs:
            if s not in s_mods:
                raise KdedgeError("student has no layer %r" % s, fix="layers: " + ", ".join(n for n in s_mods if n)[:600])
            if t not in t_mods:
                raise KdedgeError("teacher has no layer %r" % t, fix="layers: " + ", ".join(n for n in t_mods if n)[:600])
        self.pairs = pairs
        self._s = [_Grab(s_mods[s]) for s, _ in pairs]
        self._t = [_Grab(t_mods[t]) for _, t in pairs]
        # One probe forward through both finds each feature's width and checks the resolutions agree.
        with torch.no_grad():
            student(probe[0])
            (teacher_fn or teacher)(probe[1])  # teacher_fn: how the trainer runs the teacher (colour, range)
        adapters = []
        for (s, t), gs, gt in zip(pairs, self._s, self._t):
            fs, ft = gs.value, gt.value
            if fs.shape[-2:] != ft.shape[-2:]:
                raise KdedgeError("feature %s %s and teacher feature %s %s differ in size" % (s, tuple(fs.shape[-2:]), t, tuple(ft.shape[-2:])),
                                  fix="pair layers at the same (LR) resolution")
            adapters.append(nn.Conv2d(fs.shape[1], ft.shape[1], 1))
        self.adapters = nn.ModuleList(adapters)

    def loss(self) -> torch.Tensor:
        total = 0.0
        for adapter, gs, gt in zip(self.adapters, self._s, self._t):
            ft = gt.value.detach().float()
            fs = adapter(gs.value.float())
            total = total + (fs - ft).abs().mean() / ft.abs().mean().clamp(min=1e-6)
        return total / len(self.adapters)

    def remove(self) -> None:
        for g in self._s + self._t:
            g.handle.remove()


def loss_terms(cfg, out: torch.Tensor, batch: Dict[str, torch.Tensor], distiller: Optional[FeatureDistiller],
               teacher_out: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The weighted terms of the training loss; 'total' is their sum."""
    terms: Dict[str, torch.Tensor] = {}
    if cfg.gt_weight and batch["has_hr"].sum() > 0:
        terms["gt"] = cfg.gt_weight * pixel_loss(cfg.loss, out, batch["hr"], batch["has_hr"])
    target = teacher_out if teacher_out is not None else batch.get("teacher")
    if cfg.kd_weight and target is not None:
        terms["kd"] = cfg.kd_weight * pixel_loss(cfg.loss, out, target)
    if cfg.feat_weight and distiller is not None:
        terms["feat"] = cfg.feat_weight * distiller.loss()
    terms["total"] = sum(terms.values())
    return terms
