"""Train a student on paired data, without a teacher (the twin every distillation is compared with).

The same trainer as `kdedge distill` (same options, run folder, checkpoints, --resume, torchrun),
with no teacher: the loss is to ground truth only. Every option is a field of
kdedge.distill.config.TrainConfig; --config YAML sets any of them, flags override.

examples:
  kdedge train
  kdedge train --data ../shared/data/train/T91 ../shared/data/train/BSD200 --val ../shared/data/test/Set5 \\
               --student anchor --width 24 --depth 2 --steps 27000 --out runs/plain
  kdedge train --resume --out runs/plain
  torchrun --nproc_per_node=2 -m kdedge train --steps 100 --out runs/ddp
"""
from __future__ import annotations

TRAIN_DEFAULTS = {"steps": 1500, "eval_interval": 500}


def add_arguments(parser) -> None:
    from kdedge.cli._common import add_config_argument
    from kdedge.distill.config import add_arguments as add_config_fields

    add_config_argument(parser)
    add_config_fields(parser, TRAIN_DEFAULTS)


def run(args) -> int:
    from kdedge.distill.run import run_command

    return run_command(args, "train", TRAIN_DEFAULTS)
