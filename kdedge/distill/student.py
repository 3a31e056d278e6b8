"""The student a run trains, and what updates it: `build_student` makes the model (seeded), the
feature adapters (feature distillation), the AdamW optimizer, the weights' EMA and the autocast
settings; `EMA` is the moving average the checkpoints deploy.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, NamedTuple, Optional

import torch

from kdedge.distill.cache import teacher_forward
from kdedge.distill.config import TrainConfig
from kdedge.distill.inputs import RunData
from kdedge.distill.losses import FeatureDistiller, parse_pairs


class EMA:
    """Exponential moving average of the weights. Hand-written (a few lines) rather than swa_utils.AveragedModel
    so that its state dict has exactly the model's keys and goes into the checkpoint as the model.

    The decay warms up as min(decay, (1 + step) / (10 + step)) (timm's ModelEmaV2 habit): with a flat
    0.999 the random initial weights still weigh 0.999^2000 = 13% after 2000 steps (measured: 26.5 dB
    validation instead of 36), which short CPU runs cannot afford.
    """

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1.0 + step) / (10.0 + step))
        for e, m in zip(self.module.state_dict().values(), module.state_dict().values()):
            if e.dtype.is_floating_point:
                e.lerp_(m, 1.0 - decay)
            else:
                e.copy_(m)


class Student(NamedTuple):
    """The model being trained and what updates it."""

    module: torch.nn.Module
    distiller: Optional[FeatureDistiller]
    params: List[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    ema: Optional["EMA"]
    memory_format: torch.memory_format
    amp_dtype: torch.dtype
    use_amp: bool
    scaler: Any  # GradScaler for float16 autocast, else None


def build_student(cfg: TrainConfig, model_args: Dict[str, Any], device: torch.device, data: RunData) -> Student:
    """The student (seeded), feature adapters when distilling features online, AdamW, EMA, autocast."""
    from kdedge.models import create_model

    teacher = data.teacher
    torch.manual_seed(cfg.seed)
    module = create_model(cfg.student, scale=cfg.scale, color=cfg.color, **model_args).to(device)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    module = module.to(memory_format=memory_format)
    distiller = None
    if data.online and cfg.feat_weight > 0:
        teacher.module.to(memory_format=memory_format)
        c = 1 if cfg.color == "y" else 3
        probe = (torch.rand(1, c, cfg.patch, cfg.patch, device=device), torch.rand(1, 3, cfg.patch, cfg.patch, device=device))
        distiller = FeatureDistiller(module, teacher.module, parse_pairs(cfg.feat_pairs), probe,
                                     teacher_fn=lambda x: teacher_forward(teacher, x, cfg.color)).to(device)
    params = list(module.parameters()) + (list(distiller.adapters.parameters()) if distiller else [])
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay)
    ema = EMA(module, cfg.ema) if cfg.ema > 0 else None
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = None
    if use_amp and amp_dtype == torch.float16:  # bfloat16 needs no loss scaling (not executed here: no GPU)
        scaler = torch.amp.GradScaler("cuda") if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler") \
            else torch.cuda.amp.GradScaler()
    return Student(module, distiller, params, optimizer, ema, memory_format, amp_dtype, use_amp, scaler)
