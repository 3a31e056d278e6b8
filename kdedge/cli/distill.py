"""Distil a teacher into a small INT8-friendly student (train with teacher labels, cached once).

With no arguments, the embedded teacher (a model kdedge trained itself, shipped in the package)
is distilled into the default x2 Y-channel student on scikit-image's bundled photos: a few minutes
on a laptop CPU, no download. Every option is a field of kdedge.distill.config.TrainConfig; a YAML
file given with --config sets any of them (keys = option names), flags override it.

Defaults of this command (on top of TrainConfig's): --teacher embedded, --gt-weight 1,
--kd-weight 1 (output distillation from the teacher-output cache: computed once per training image,
so a step costs ~1.04x a plain one), --hr-as-lr with --unlabeled-ratio 0.25 (the teacher also labels
the HR images used as LR inputs: data that has no ground truth), --steps 1500. Feature distillation
(--feat-weight, --feat-pairs) runs the teacher online every step (about 20x a step for IMDN on a CPU).

Outputs (run folder, --out): config.yaml, metrics.csv, curve.png, last.safetensors (resumable),
best.safetensors (deployable). Continue a killed run with --resume --out RUN. Several GPUs or
machines: torchrun --nproc_per_node=N -m kdedge distill ... (DDP; gloo on CPUs).

examples:
  kdedge distill
  kdedge distill --teacher imdn_x2 --data ../shared/data/train/T91 ../shared/data/train/BSD200 \\
                 --val-holdout 2 --student repanchor --steps 20000 --out runs/imdn
  kdedge distill --resume --out runs/imdn
  kdedge distill ... --recycle-interval 2000     # re-initialise ReLU channels that stopped firing
  kdedge distill --teacher imdn_x2 --no-hr-as-lr --unlabeled-ratio 0 --feat-weight 0.1 \\
                 --feat-pairs body.1=IMDB2,body.3=IMDB6 --teacher-cache off
  kdedge eval --model runs/imdn/best.safetensors --data ../shared/data/test/Set5
  kdedge export runs/imdn/best.safetensors --int8 --out bundle/
"""
from __future__ import annotations

# What `kdedge distill` changes relative to TrainConfig's defaults (the no-argument run).
DISTILL_DEFAULTS = {
    "teacher": "embedded",
    "kd_weight": 1.0,
    "gt_weight": 1.0,
    "hr_as_lr": True,
    "unlabeled_ratio": 0.25,
    "steps": 1500,
    "eval_interval": 500,
}


def add_arguments(parser) -> None:
    from kdedge.cli._common import add_config_argument
    from kdedge.distill.config import add_arguments as add_config_fields

    add_config_argument(parser)
    add_config_fields(parser, DISTILL_DEFAULTS)


def run(args) -> int:
    from kdedge.distill.run import run_command

    return run_command(args, "distill", DISTILL_DEFAULTS)
