"""The training loop of `kdedge train` and `kdedge distill`, readable top to bottom (nanoGPT-shaped).

    setup (device, DDP ranks, run folder)  ->  data (pairs, teacher labels)  ->  student, optimizer
    ->  resume  ->  loop: sample patches, forward, losses, step, EMA; every `log_interval` a metrics
    row; every `eval_interval` validation Y-PSNR and atomic checkpoints `last` (+ `best`)  ->  done.

`train(cfg)` is the public call; the CLI commands are thin wrappers around it. `_train` is the loop,
the functions after it its steps; the data and teacher come from inputs.py, the student from
student.py, and the run folder (config.yaml, metrics.csv, curve.png, last.safetensors with the
resumable state, best.safetensors) and resuming from rundir.py. A resumed run continues exactly:
the patch sampler is re-seeded from (seed, rank, step) at every checkpoint, so the steps after a
resume draw the patches an uninterrupted run would have drawn.
"""
from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

import numpy as np
import torch

from kdedge.checkpoint import read_header, save_checkpoint, unwrap
from kdedge.distill import ddp, rundir
from kdedge.distill.cache import teacher_forward
from kdedge.distill.config import TrainConfig
from kdedge.distill.data import validate_psnr
from kdedge.distill.footage import agreement_psnr
from kdedge.distill.inputs import RunData, load_data
from kdedge.distill.losses import loss_terms
from kdedge.distill.stopper import Stopper
from kdedge.distill.student import Student, build_student
from kdedge.errors import KdedgeError, from_os_error

# --------------------------------------------------------------------------- small helpers

def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine from cfg.lr down to cfg.min_lr at cfg.steps."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * min(1.0, progress)))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise KdedgeError("--device %s asked for, but CUDA is not available" % name, fix="use --device cpu")
    return torch.device(name)


def student_args(cfg: TrainConfig) -> Dict[str, Any]:
    from kdedge.models.students import STUDENTS

    if cfg.student not in STUDENTS:
        raise KdedgeError("unknown student %r" % cfg.student, fix="choose one of: %s" % ", ".join(STUDENTS))
    args: Dict[str, Any] = {}
    if cfg.width is not None:
        args["width"] = cfg.width
    if cfg.depth is not None:
        args["depth"] = cfg.depth
    if cfg.branches:
        if cfg.student != "repanchor":
            raise KdedgeError("--branches applies to the repanchor student only")
        from kdedge.models.students import BRANCH_SETS

        names = BRANCH_SETS.get(cfg.branches, [b for b in cfg.branches.split(",") if b])
        args["branches"] = list(names)
    return args


# --------------------------------------------------------------------------- the loop

def train(cfg: TrainConfig, command: str = "distill") -> Dict[str, Any]:
    """Train (and distil, when cfg.teacher is set) a student; returns a summary dict of the run."""
    # ---- setup: device, ranks, run folder -------------------------------------------------------
    device = resolve_device(cfg.device)
    dist = ddp.setup(device.type)
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        resume_path = rundir.resolve_resume(cfg)
        out = Path(ddp.broadcast_object(dist, cfg.out or (str(resume_path.parent) if resume_path else rundir.default_out(command))))
        cfg.out = str(out)
        if cfg.batch % dist.world_size:
            raise KdedgeError("batch %d does not split over %d processes" % (cfg.batch, dist.world_size),
                              fix="use a batch that is a multiple of the process count")
        model_args = student_args(cfg)
        if resume_path is not None:
            rundir.check_compatible(read_header(resume_path), resume_path, cfg, model_args)
        created = not out.exists()
        if dist.is_main:
            rundir.prepare_run_folder(out, resuming=resume_path is not None)
        ddp.barrier(dist)
        try:
            return _train(_Session(cfg, command, device, dist, out, model_args), resume_path)
        except KdedgeError:
            # bad input found before any training (no images, bad teacher): leave no run folder that
            # holds nothing but config.yaml
            if dist.is_main and created and sorted(p.name for p in out.iterdir()) in ([], ["config.yaml"]):
                shutil.rmtree(str(out), ignore_errors=True)
            raise
    finally:
        Stopper.restore_all()  # also after an exception in the loop
        ddp.cleanup(dist)


def _train(s: "_Session", resume_path: Optional[Path]) -> Dict[str, Any]:
    cfg, dist, out, main = s.cfg, s.dist, s.out, s.dist.is_main
    if main:
        rundir.write_config(out, cfg.to_dict())
    data = load_data(cfg, s.device, dist)  # pairs in the student's colour space, teacher labels
    st = build_student(cfg, s.model_args, s.device, data)  # student, optimizer, EMA, adapters, autocast
    p = _resume(s, st, resume_path)
    model = _parallel(s, st.module)  # DDP wrapper under torchrun, after the weights are final

    # ---- the loop -------------------------------------------------------------------------------
    rng = np.random.default_rng([cfg.seed, dist.rank, p.step])
    per_rank = cfg.batch // dist.world_size
    patches = _patch_source(data, s.device)
    bar = _progress_bar(cfg.steps, p.step, s.command) if main and cfg.progress else None
    p.t_start = p.t_log = time.time()
    st.module.train()
    end = min(cfg.steps, cfg.stop_at) if cfg.stop_at > 0 else cfg.steps
    # SIGINT/SIGTERM: finish the step in progress, save last.safetensors, then stop (no step lost).
    # Not under DDP: every rank would have to agree on the stopping step first.
    stopper = Stopper(enabled=not dist.enabled)
    interrupted = None
    while p.step < end:
        if stopper.signal is not None:
            interrupted = stopper.signal
            break
        lr = lr_at(p.step, cfg)
        for g in st.optimizer.param_groups:
            g["lr"] = lr
        batch = patches(per_rank, rng)
        terms = _step(s, st, model, data, batch, p.step)  # forward, losses, backward, optimizer, EMA
        p.step += 1
        if cfg.recycle_interval and p.step % cfg.recycle_interval == 0 and p.step <= cfg.recycle_until * cfg.steps:
            _recycle(s, st, patches, per_rank, p, bar)  # dead ReLU channels re-initialised (ReDo)
        p.since_log += 1
        if bar is not None:
            bar.update(1)
        do_eval = p.step % cfg.eval_interval == 0 or p.step == end
        if main and (p.step % cfg.log_interval == 0 or do_eval):
            _log(s, st, data, p, lr, terms, do_eval, bar)  # a metrics row (+ validation on eval steps)
        if do_eval:
            if main:
                _save(s, st, data, p, bar)  # best.safetensors on improvement, last.safetensors, curve
            p.best = ddp.broadcast_object(dist, p.best)
            ddp.barrier(dist)
            # Re-seed so that a run resumed from this checkpoint draws exactly these patches next.
            rng = np.random.default_rng([cfg.seed, dist.rank, p.step])
    stopper.restore()
    if bar is not None:
        bar.close()
    if interrupted is not None and main:
        if p.rows:
            rundir.write_metrics(out / "metrics.csv", p.rows)
        _checkpoint(s, st, data, p, out / "last.safetensors", with_state=True)
        print("%s received: stopped after step %d of %d; saved %s (resume: kdedge %s --resume --out %s)"
              % (interrupted, p.step, cfg.steps, out / "last.safetensors", s.command, out), flush=True)
    return {
        "interrupted": interrupted, "out": str(out), "step": p.step, "best_psnr": p.best, "val_psnr": p.last_val,
        "seconds": p.seconds(), "last": str(out / "last.safetensors"), "best": str(out / "best.safetensors"),
        "val_images": [v.name for v in data.val_pairs], "is_main": main, "world_size": dist.world_size,
    }


# --------------------------------------------------------------------------- what the loop calls

class _Session(NamedTuple):
    cfg: TrainConfig
    command: str  # "train" or "distill": names the progress bar and the resume hint
    device: torch.device
    dist: Any  # ddp.Dist
    out: Path
    model_args: Dict[str, Any]


@dataclass
class _Progress:
    step: int = 0
    best: float = float("-inf")
    elapsed: float = 0.0  # seconds spent by the sessions before this one (resume)
    rows: List[Dict[str, Any]] = field(default_factory=list)
    last_val: Optional[float] = None
    t_start: float = 0.0
    t_log: float = 0.0
    since_log: int = 0
    recycled: int = 0  # dead channels re-initialised so far (--recycle-interval)

    def seconds(self) -> float:
        return self.elapsed + time.time() - self.t_start


def _resume(s: _Session, st: Student, path: Optional[Path]) -> _Progress:
    p = _Progress()
    if path is None:
        return p
    adapters = st.distiller.adapters if st.distiller is not None else None
    p.step, p.best, p.elapsed = rundir.restore(path, st.module, st.optimizer, st.ema, adapters)
    if s.dist.is_main:
        p.rows = rundir.read_metrics(s.out / "metrics.csv", p.step)
        p.recycled = int(float(p.rows[-1].get("recycled") or 0)) if p.rows else 0
        print("resumed %s at step %d (best val %.2f dB)" % (path, p.step, p.best))
    return p


def _parallel(s: _Session, module: torch.nn.Module) -> torch.nn.Module:
    if not s.dist.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[s.dist.local_rank] if s.device.type == "cuda" else None)


def _patch_source(data: RunData, device: torch.device):
    """(batch, rng) -> dict of tensors on `device`. On a GPU the patches are cut there (DevicePatches: the
    same draws and patches, without a per-patch Python loop and host copies; not executed on the
    development machines, which have no GPU). On a CPU the numpy crops are faster than indexing."""
    if device.type == "cuda" and not data.sampler.need_teacher_input:
        from kdedge.distill.device_patches import DevicePatches

        return DevicePatches(data.sampler, device).sample
    return lambda n, rng: {k: torch.from_numpy(v).to(device) for k, v in data.sampler.sample(n, rng).items()}


def _progress_bar(total: int, initial: int, command: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc=command)


def _step(s: _Session, st: Student, model, data: RunData, batch: Dict[str, torch.Tensor], step: int) -> Dict[str, torch.Tensor]:
    """One optimisation step; returns the loss terms (tensors: `.item()` only when logging)."""
    x = batch["lr"].contiguous(memory_format=st.memory_format)
    with torch.autocast(s.device.type, dtype=st.amp_dtype, enabled=st.use_amp):
        teacher_out = None
        if data.online:
            with torch.no_grad():
                teacher_out = teacher_forward(data.teacher, batch["teacher_input"].contiguous(memory_format=st.memory_format), s.cfg.color)
        pred = model(x)
        terms = loss_terms(s.cfg, pred, batch, st.distiller, teacher_out)
    st.optimizer.zero_grad(set_to_none=True)
    if st.scaler is not None:
        st.scaler.scale(terms["total"]).backward()
        st.scaler.unscale_(st.optimizer)
    else:
        terms["total"].backward()
    if st.distiller is not None:
        ddp.average_gradients(s.dist, st.distiller.adapters.parameters())
    if s.cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(st.params, s.cfg.grad_clip)
    if st.scaler is not None:
        st.scaler.step(st.optimizer)
        st.scaler.update()
    else:
        st.optimizer.step()
    if st.ema is not None:
        st.ema.update(unwrap(st.module), step)
    return terms


RECYCLE_BATCHES = 8  # fresh batches a channel must stay silent on to count as dead


def _recycle(s: _Session, st: Student, patches, per_rank: int, p: _Progress, bar) -> None:
    """Find ReLU channels that never fire on a few fresh batches and re-initialise them (kdedge.distill.recycle).
    The batches come from their own generator, so the training draws stay those of a run without recycling;
    the main rank decides and every rank applies the same surgery."""
    from kdedge.distill.recycle import dead_channels, recycle

    cfg, dist = s.cfg, s.dist
    dead = None
    if dist.is_main:
        rng = np.random.default_rng([cfg.seed, 0xDEAD, p.step])
        dead = dead_channels(unwrap(st.module), [patches(per_rank, rng)["lr"] for _ in range(RECYCLE_BATCHES)])
    dead = ddp.broadcast_object(dist, dead)
    if not dead:
        return
    generator = torch.Generator().manual_seed(cfg.seed * 1000003 + p.step)
    p.recycled += recycle(unwrap(st.module), dead, generator, st.optimizer, st.ema.module if st.ema is not None else None)
    if dist.is_main:
        msg = "step %d: re-initialised dead ReLU channels %s" % (
            p.step, ", ".join("body.%d:%s" % (2 * k + 1, c) for k, c in sorted(dead.items())))
        bar.write(msg) if bar is not None else print(msg, flush=True)


def _log(s: _Session, st: Student, data: RunData, p: _Progress, lr: float, terms, do_eval: bool, bar) -> None:
    """Append a metrics row (validation PSNR on eval steps) and rewrite metrics.csv."""
    # .item() forces a device sync: only here, every log_interval steps.
    now = time.time()
    row = {"step": p.step, "seconds": round(p.elapsed + now - p.t_start, 2), "lr": "%.3g" % lr,
           "ms_per_step": round(1000 * (now - p.t_log) / p.since_log, 1)}
    row.update({k if k != "total" else "loss": "%.6f" % v.item() for k, v in terms.items()})
    if s.cfg.recycle_interval:
        row["recycled"] = p.recycled
    p.t_log, p.since_log = now, 0
    if do_eval:
        p.last_val = _measure(s, st, validate_psnr, data.val_pairs)
        row["val_psnr"] = "%.3f" % p.last_val
        if data.footage_val:
            row["footage_agree_psnr"] = "%.3f" % _measure(s, st, agreement_psnr, data.footage_val)
    p.rows.append(row)
    rundir.write_metrics(s.out / "metrics.csv", p.rows)
    if bar is not None:
        bar.set_postfix(loss=row["loss"][:7], psnr="%.2f" % p.last_val if p.last_val else "-", refresh=False)


def _save(s: _Session, st: Student, data: RunData, p: _Progress, bar) -> None:
    cfg, out = s.cfg, s.out
    if p.last_val > p.best:
        p.best = p.last_val
        _checkpoint(s, st, data, p, out / "best.safetensors", with_state=False)
    _checkpoint(s, st, data, p, out / "last.safetensors", with_state=True)
    if cfg.plot:
        rundir.plot_curve(out / "curve.png", p.rows, "%s %s x%d (%s)" % (s.command, cfg.student, cfg.scale, out.name))
    if bar is not None:
        bar.write("step %d/%d  loss %s  val Y-PSNR %.2f dB  best %.2f dB"
                  % (p.step, cfg.steps, p.rows[-1].get("loss"), p.last_val, p.best))


def _deployed(st: Student) -> torch.nn.Module:
    """The weights a checkpoint deploys: the EMA's when there is one."""
    return st.ema.module if st.ema is not None else unwrap(st.module)


def _measure(s: _Session, st: Student, metric, samples) -> float:
    """metric(SRModel of the deployed weights, samples), leaving the module's train/eval mode as it was."""
    from kdedge.models.descriptor import SRModel

    m = _deployed(st)
    was_training = m.training
    value = metric(SRModel(m, s.cfg.student, s.cfg.scale, s.cfg.color), samples)
    m.train(was_training)
    return value


def _checkpoint(s: _Session, st: Student, data: RunData, p: _Progress, path: Path, with_state: bool) -> None:
    cfg = s.cfg
    adapters = st.distiller.adapters if st.distiller is not None else None
    state = rundir.train_state(st.module, st.optimizer, st.ema, adapters, p.step, p.best, p.seconds()) if with_state else None
    try:
        save_checkpoint(path, _deployed(st), arch=cfg.student, model_args=s.model_args, scale=cfg.scale,
                        color=cfg.color, step=p.step, best_metric=p.best if p.best > float("-inf") else None,
                        teacher=data.teacher_info, config=cfg.to_dict(), train_state=state,
                        extra={"val_psnr_y": p.last_val, "val_images": [v.name for v in data.val_pairs],
                               "world_size": s.dist.world_size})
    except OSError as exc:  # written atomically: the previous checkpoint at `path` is still whole
        err = from_os_error(exc, str(path), "saving the step-%d checkpoint failed" % p.step)
        raise KdedgeError(err.message, fix="%s; then `kdedge %s --resume --out %s` continues from the last "
                                           "checkpoint saved (still intact)" % (err.fix or "fix the cause", s.command, s.out)) from exc

