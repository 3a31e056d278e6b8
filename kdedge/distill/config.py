"""`TrainConfig`: every knob of `kdedge train` / `kdedge distill`, with its default and the reason for it.

The defaults are the documentation (nanoGPT's habit). The order of precedence is dataclass default <-
YAML file (`--config`) <- command-line flag, and the CLI builds its flags from these fields, so a
YAML key is always a field name and a typo is an error. The resolved config is written to the run
folder and into every checkpoint.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from kdedge.common import parse_size
from kdedge.errors import KdedgeError


@dataclass
class TrainConfig:
    # ---- data -----------------------------------------------------------------------------------
    data: List[str] = field(default_factory=list)  # HR training folders; empty = scikit-image's bundled photos (no download)
    val: str = ""  # HR validation folder (e.g. Set5); "" = hold out `val_holdout` training images
    val_holdout: int = 2  # images held out of training for validation when `val` is empty
    scale: int = 2  # upscaling factor (2, 3, 4)
    patch: int = 48  # LR patch side; 48 is the classic choice for x2 (96 px HR)
    batch: int = 32  # global batch size, split evenly across DDP ranks
    # ---- student --------------------------------------------------------------------------------
    student: str = "repanchor"  # registry name: anchor, repanchor, espcn
    width: Optional[int] = None  # None = the student's default width
    depth: Optional[int] = None  # None = the student's default depth
    branches: str = ""  # repanchor only: "fast" (3x3+1x1+identity, its default), "ecb" (ECBSR's edge set, ~5x slower steps), or a comma list
    color: str = "y"  # "y" (MATLAB luma, chroma upscaled by bicubic) or "rgb"
    # ---- teacher and losses ---------------------------------------------------------------------
    teacher: str = ""  # "" = none (kdedge train); "embedded", a zoo name, a checkpoint or weights file, or an arch with teacher_weights
    teacher_weights: str = ""  # weights file when `teacher` is an architecture name
    loss: str = "l1"  # "l1" or "charbonnier" (both robust; L2 blurs SR outputs)
    gt_weight: float = 1.0  # weight of the loss to ground truth (samples that have it)
    kd_weight: float = 0.0  # weight of the loss to the teacher's output (output distillation)
    feat_weight: float = 0.0  # weight of feature distillation (needs an online teacher forward every step)
    feat_pairs: str = ""  # "student_layer=teacher_layer,..." module names, matched through learned 1x1 adapters
    teacher_cache: str = "memory"  # teacher outputs computed once: "memory", "disk" (reused across runs), or "off" (online)
    cache_dir: str = ""  # disk cache location; "" = ~/.cache/kdedge/teacher
    extra_lr: List[str] = field(default_factory=list)  # folders of images without ground truth, labelled by the teacher
    footage: List[str] = field(default_factory=list)  # your camera's video: files, image folders, v4l2://, rtsp://, csi:// (no ground truth; the teacher labels sampled frames)
    footage_stride: int = 5  # keep every n-th footage frame, plus scene changes, minus near-duplicates
    footage_size: str = ""  # "WxH" the camera feeds at deployment; footage frames are downscaled to it; "" = as recorded
    footage_holdout: float = 0.1  # last fraction of each footage source held out: student-teacher agreement is validated on it
    hr_as_lr: bool = False  # also let the teacher label the HR training images used as LR inputs (textures at another scale)
    unlabeled_ratio: float = 0.0  # fraction of every batch drawn from the teacher-labelled images without ground truth
    # ---- optimisation ---------------------------------------------------------------------------
    steps: int = 3000  # optimizer steps
    lr: float = 1e-3  # peak learning rate (AdamW); small SR nets like 1e-3..2e-3
    min_lr: float = 1e-5  # cosine schedule floor
    warmup: int = 0  # linear warm-up steps
    weight_decay: float = 0.0  # AdamW decay; tiny nets underfit, so off by default
    ema: float = 0.0  # EMA decay of the weights (e.g. 0.999); 0 = off. Checkpoints deploy the EMA weights
    grad_clip: float = 0.0  # clip the gradient norm; 0 = off
    recycle_interval: int = 0  # every N steps re-initialise ReLU channels that never fire (ReDo; anchor, repanchor, espcn students); 0 = off
    recycle_until: float = 0.75  # fraction of the steps after which no channel is recycled (it needs time to learn)
    # ---- run ------------------------------------------------------------------------------------
    out: str = ""  # run folder; "" = runs/<command>/<date-time>
    resume: str = ""  # "" = fresh run; "last" = <out>/last.safetensors; or a checkpoint path
    stop_at: int = 0  # stop after this step (checkpointed; continue later with --resume); 0 = run to `steps`
    eval_interval: int = 500  # steps between validations (and checkpoints)
    log_interval: int = 20  # steps between metric rows (loss.item() syncs, so not every step)
    seed: int = 0
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1"
    amp: bool = True  # bfloat16/float16 autocast on CUDA; ignored on the CPU (slower there)
    channels_last: bool = True  # NHWC convolutions: about 2x faster for these nets on this CPU
    threads: int = 0  # torch CPU threads; 0 = torch's default
    progress: bool = True  # tqdm bar with loss, PSNR, it/s and ETA
    plot: bool = True  # training-curve PNG in the run folder (matplotlib, Agg)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


CHOICES = {
    "loss": ("l1", "charbonnier"),
    "color": ("y", "rgb"),
    "teacher_cache": ("memory", "disk", "off"),
    "scale": (2, 3, 4),
}


def from_dict(values: Dict[str, Any], base: Optional[TrainConfig] = None, source: str = "config") -> TrainConfig:
    """A TrainConfig from `base` (or the defaults) with `values` applied: unknown keys and wrong types raise."""
    cfg = dataclasses.replace(base) if base is not None else TrainConfig()
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            raise KdedgeError("%s: unknown option %r" % (source, key), fix="valid options: " + ", ".join(sorted(fields)))
        setattr(cfg, name, _coerce(name, value, getattr(TrainConfig(), name), source))
    validate(cfg)
    return cfg


def _coerce(name: str, value: Any, default: Any, source: str) -> Any:
    if value is None:
        return None if name in ("width", "depth") else default
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError("not a boolean")
            return bool(value)
        if isinstance(default, list):
            if isinstance(value, str):
                return [v for v in value.split(",") if v]
            return [str(v) for v in value]
        if name in ("width", "depth"):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("not an integer")
            return int(value)
        return str(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise KdedgeError("%s: %s=%r: %s" % (source, name, value, exc)) from exc


def validate(cfg: TrainConfig) -> None:
    for name, choices in CHOICES.items():
        if getattr(cfg, name) not in choices:
            raise KdedgeError("%s=%r is not one of %s" % (name, getattr(cfg, name), list(choices)))
    for name in ("patch", "batch", "steps", "eval_interval", "log_interval"):
        if getattr(cfg, name) <= 0:
            raise KdedgeError("%s must be positive (got %r)" % (name, getattr(cfg, name)))
    if not 0.0 <= cfg.unlabeled_ratio < 1.0:
        raise KdedgeError("unlabeled_ratio must be in [0, 1) (got %r)" % cfg.unlabeled_ratio)
    if not cfg.teacher and (cfg.kd_weight or cfg.feat_weight):
        raise KdedgeError("kd_weight/feat_weight are set but no teacher is given", fix="add --teacher, or set the weights to 0")
    if (cfg.extra_lr or cfg.hr_as_lr or cfg.footage) and not cfg.kd_weight:
        raise KdedgeError("images without ground truth (footage / extra_lr / hr_as_lr) need a teacher and kd_weight > 0",
                          fix="add --teacher and --kd-weight")
    if cfg.unlabeled_ratio and not (cfg.extra_lr or cfg.hr_as_lr or cfg.footage):
        raise KdedgeError("unlabeled_ratio > 0 but no images without ground truth", fix="add --footage URI, --extra-lr FOLDER or --hr-as-lr")
    if cfg.recycle_interval < 0 or not 0.0 <= cfg.recycle_until <= 1.0:
        raise KdedgeError("recycle_interval must be >= 0 and recycle_until in [0, 1] (got %r, %r)"
                          % (cfg.recycle_interval, cfg.recycle_until))
    if cfg.footage_stride < 1:
        raise KdedgeError("footage_stride must be >= 1 (got %r)" % cfg.footage_stride)
    if not 0.0 <= cfg.footage_holdout < 1.0:
        raise KdedgeError("footage_holdout must be in [0, 1) (got %r)" % cfg.footage_holdout)
    if cfg.footage_size:
        parse_size(cfg.footage_size, "footage_size")  # raises unless WxH
    if cfg.feat_weight and not cfg.feat_pairs:
        raise KdedgeError("feat_weight > 0 needs feat_pairs (student_layer=teacher_layer,...)")
    if cfg.gt_weight <= 0 and cfg.kd_weight <= 0:
        raise KdedgeError("both gt_weight and kd_weight are 0: nothing to learn from")


def add_arguments(parser, defaults: Optional[Dict[str, Any]] = None) -> None:
    """One `--flag` per TrainConfig field (dest = field name, so YAML keys match), default None = unset."""
    import argparse

    base = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        default = getattr(base, f.name)
        if defaults and f.name in defaults:
            default = defaults[f.name]
        flag = "--" + f.name.replace("_", "-")
        help_text = _FIELD_HELP.get(f.name, "") + " (default: %s)" % (default if default not in ("", []) else "-")
        if f.name == "resume":
            parser.add_argument(flag, dest=f.name, nargs="?", const="last", default=None, metavar="CKPT",
                                help=help_text.replace("(default", "; bare --resume = <out>/last.safetensors (default"))
        elif isinstance(default, bool):
            # --x / --no-x by hand: argparse.BooleanOptionalAction is Python 3.9+.
            parser.add_argument(flag, dest=f.name, default=None, action="store_const", const=True, help=help_text)
            parser.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_const", const=False,
                                help=argparse.SUPPRESS)
        elif isinstance(default, list):
            parser.add_argument(flag, dest=f.name, default=None, nargs="+", metavar="FOLDER", help=help_text)
        else:
            kind = int if f.name in ("width", "depth") else type(default)
            parser.add_argument(flag, dest=f.name, default=None, type=kind, choices=CHOICES.get(f.name),
                                help=help_text)


def _field_help() -> Dict[str, str]:
    """Field comments of this file's dataclass, used as --help text (one source of truth)."""
    import inspect
    import re

    out = {}
    try:
        src = inspect.getsource(TrainConfig)
    except (OSError, TypeError):
        return out
    for line in src.splitlines():
        m = re.match(r"\s+(\w+): [^=]+= .*?  # (.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


_FIELD_HELP = _field_help()
