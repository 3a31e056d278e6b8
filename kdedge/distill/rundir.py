"""The run folder of `kdedge train` / `kdedge distill`, and resuming from it.

A run folder holds `config.yaml` (the resolved config), `metrics.csv` (one row per log or eval
step), `curve.png` (loss and validation PSNR), `last.safetensors` (weights plus the resumable state)
and `best.safetensors` (deployable weights only); every file is written atomically. Resuming reads
`last.safetensors` back: weights, optimizer, EMA, feature adapters, torch RNG, step, best metric,
time spent, and the metrics rows up to that step.
"""
from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from kdedge.checkpoint import atomic_write_bytes
from kdedge.errors import KdedgeError

METRIC_FIELDS = ["step", "seconds", "lr", "loss", "gt", "kd", "feat", "val_psnr", "footage_agree_psnr", "ms_per_step", "recycled"]


def default_out(command: str) -> str:
    return os.path.join("runs", command, time.strftime("%Y%m%d-%H%M%S"))


def prepare_run_folder(out: Path, resuming: bool) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise KdedgeError("run folder %s is not writable: %s" % (out, exc), fix="choose another --out") from exc
    for stale in out.glob(".*.tmp"):  # atomic-write temporaries left by a kill mid-write
        try:
            stale.unlink()
        except OSError:
            pass
    if not resuming and (out / "last.safetensors").exists():
        raise KdedgeError("run folder %s already holds a run (last.safetensors)" % out,
                          fix="add --resume to continue it, or choose another --out")


def write_config(out: Path, config: Dict[str, Any]) -> None:
    import yaml

    atomic_write_bytes(out / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())


def write_metrics(path: Path, rows: List[Dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in METRIC_FIELDS})
    atomic_write_bytes(path, buf.getvalue().encode())


def read_metrics(path: Path, up_to_step: int) -> List[Dict[str, Any]]:
    """Rows of an earlier run up to the resumed step (rows a killed run wrote later are dropped)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= up_to_step]


def plot_curve(path: Path, rows: List[Dict[str, Any]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [int(r["step"]) for r in rows if r.get("loss") not in ("", None)]
    loss = [float(r["loss"]) for r in rows if r.get("loss") not in ("", None)]
    vs = [(int(r["step"]), float(r["val_psnr"])) for r in rows if r.get("val_psnr") not in ("", None)]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, loss, color="tab:blue", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss", color="tab:blue")
    ax.set_yscale("log")
    if vs:
        ax2 = ax.twinx()
        ax2.plot([s for s, _ in vs], [v for _, v in vs], "o-", color="tab:red")
        ax2.set_ylabel("validation Y-PSNR (dB)", color="tab:red")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- resume


def resolve_resume(cfg) -> Optional[Path]:
    """The checkpoint --resume names: "last" is RUN/last.safetensors of --out; None without --resume."""
    if not cfg.resume:
        return None
    if cfg.resume == "last":
        if not cfg.out:
            raise KdedgeError("--resume without a checkpoint path needs --out RUN_FOLDER")
        return Path(cfg.out) / "last.safetensors"
    return Path(cfg.resume)


def check_compatible(header: Dict[str, Any], path: Path, cfg, model_args: Dict[str, Any]) -> None:
    want = dict(model_args, scale=cfg.scale, color=cfg.color)
    if header.get("arch") != cfg.student or header.get("model_args") != want:
        raise KdedgeError("cannot resume from %s: it holds %s %s, this run builds %s %s"
                          % (path, header.get("arch"), header.get("model_args"), cfg.student, want),
                          fix="resume with the same student options, or start a new run (another --out)")
    if "train_state" not in header:
        raise KdedgeError("cannot resume from %s: it holds weights only, no training state" % path,
                          fix="resume from last.safetensors (best.safetensors is for deployment)")


def train_state(module, optimizer, ema, adapters, step: int, best: float, elapsed: float) -> Dict[str, Any]:
    """The resumable state saved beside the weights in last.safetensors. The weights saved are the
    EMA's when there is one, so the raw module's own go into the state."""
    import torch

    from kdedge.checkpoint import unwrap

    return {
        "model": unwrap(module).state_dict() if ema is not None else None,
        "optimizer": optimizer.state_dict(),
        "adapters": adapters.state_dict() if adapters is not None else None,
        "torch_rng": torch.get_rng_state(),
        "step": step, "best": best, "elapsed": elapsed,
    }


def restore(path: Path, module, optimizer, ema, adapters) -> Tuple[int, float, float]:
    """Load `train_state` (and the weights) of checkpoint `path` back; returns (step, best, elapsed)."""
    import torch

    from kdedge.checkpoint import load_checkpoint_full, unwrap

    _, _, state = load_checkpoint_full(path, device="cpu")
    unwrap(module).load_state_dict(state["model"] if state.get("model") is not None else _weights(path))
    optimizer.load_state_dict(state["optimizer"])
    if ema is not None:
        ema.module.load_state_dict(_weights(path))
    if adapters is not None and state.get("adapters") is not None:
        adapters.load_state_dict(state["adapters"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), float(state["best"]), float(state["elapsed"])


def _weights(path: Path):
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(path)).items() if not k.startswith("_train/")}
