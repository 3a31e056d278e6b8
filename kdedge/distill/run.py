"""What `kdedge train` and `kdedge distill` do with their parsed options (the CLI modules stay thin).

Precedence: TrainConfig defaults <- the command's defaults <- --config YAML <- flags. On --resume the
checkpoint's own config replaces the first two, so `kdedge distill --resume --out RUN` needs nothing
else; options given explicitly still apply and are checked against the checkpoint.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict


def explicit_options(args) -> Dict[str, Any]:
    from kdedge.distill.config import TrainConfig

    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
            if getattr(args, f.name, None) is not None}


def run_command(args, command: str, defaults: Dict[str, Any]) -> int:
    from kdedge.checkpoint import read_header
    from kdedge.distill.config import from_dict
    from kdedge.distill.rundir import resolve_resume
    from kdedge.distill.trainer import train

    explicit = explicit_options(args)
    if command == "train" and explicit.get("teacher"):
        from kdedge.errors import KdedgeError

        raise KdedgeError("`kdedge train` trains without a teacher", fix="use `kdedge distill --teacher ...`")
    cfg = from_dict(dict(defaults, **explicit), source="options")
    path = resolve_resume(cfg)
    if path is not None:
        header = read_header(path)
        saved = dict(header.get("config") or {}, stop_at=0)  # a stop_at of the earlier session is done
        base = from_dict(saved, source="config of %s" % path)
        cfg = from_dict(explicit, base=base, source="options")
    result = train(cfg, command=command)
    if not result["is_main"]:  # torchrun: rank 0 speaks for the run
        return 0
    if result.get("interrupted"):  # the trainer saved last.safetensors and said so
        from kdedge.errors import SIGNAL_EXIT

        return SIGNAL_EXIT.get(result["interrupted"], 1)
    print("done: %d steps in %.0f s, best validation Y-PSNR %.2f dB on %s" % (
        result["step"], result["seconds"], result["best_psnr"], ", ".join(result["val_images"][:5])))
    print("checkpoints: %s (deploy) and %s (resume)" % (result["best"], result["last"]))
    print("next: kdedge eval --model %s --data ../shared/data/test/Set5" % result["best"])
    print("      kdedge export %s --int8 --out bundle/" % result["best"])
    return 0
