"""The training loop of `kdedge train` and `kdedge distill`, readable top to bottom (nanoGPT-shaped).

    setup (device, DDP ranks, run folder)  ->  data (pairs, teacher labels)  ->  student, optimizer
    ->  resume  ->  loop: sample patches, forward, losses, step, EMA; every `log_interval` a metrics
    row; every `eval_interval` validation Y-PSNR and atomic checkpoints `last` (+ `best`)  ->  done.

`train(cfg)` is the public call; the CLI commands are thin wrappers around it. A run folder holds
`config.yaml` (the resolved config), `metrics.csv`, `curve.png`, `last.safetensors` (with the
resumable state) and `best.safetensors` (deployable weights only). A resumed run continues exactly:
the patch sampler is re-seeded from (seed, rank, step) at every checkpoint, so the steps after a
resume draw the patches an uninterrupted run would have drawn.
"""
from __future__ import annotations

import copy
import csv
import io
import math
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from kdedge.checkpoint import atomic_write_bytes, load_checkpoint_full, read_header, save_checkpoint, unwrap
from kdedge.distill import ddp
from kdedge.distill.cache import TeacherCache, check_teacher, teacher_forward
from kdedge.distill.config import TrainConfig
from kdedge.distill.data import (EMBEDDED_VAL, Image, PatchSampler, embedded_images, folder_images, make_sample,
                                 make_val_pairs, validate_psnr)
from kdedge.distill.footage import agreement_psnr, footage_options, load_footage
from kdedge.distill.losses import FeatureDistiller, loss_terms, parse_pairs
from kdedge.errors import KdedgeError, from_os_error

ASSETS = Path(__file__).resolve().parents[1] / "assets"
EMBEDDED_TEACHER = ASSETS / "teacher_x2.safetensors"
EMBEDDED_STUDENT = ASSETS / "student_x2.safetensors"
METRIC_FIELDS = ["step", "seconds", "lr", "loss", "gt", "kd", "feat", "val_psnr", "footage_agree_psnr", "ms_per_step"]


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


def load_teacher(cfg: TrainConfig, device: torch.device):
    """The teacher as an SRModel (eval mode, no gradients), or None when the config has none."""
    if not cfg.teacher:
        return None
    from kdedge.models.loading import load_model

    spec = cfg.teacher
    if spec == "embedded":
        if not EMBEDDED_TEACHER.is_file():
            raise KdedgeError("the embedded teacher %s is missing from this install" % EMBEDDED_TEACHER,
                              fix="reinstall kdedge, or give --teacher (e.g. a zoo name such as imdn_x2)")
        spec = str(EMBEDDED_TEACHER)
    teacher = load_model(spec, weights=cfg.teacher_weights or None, device=str(device))
    check_teacher(teacher, cfg.scale, cfg.color, source="teacher %s" % cfg.teacher)
    for p in teacher.module.parameters():
        p.requires_grad_(False)
    return teacher.eval()


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


def resolve_resume(cfg: TrainConfig) -> Optional[Path]:
    if not cfg.resume:
        return None
    if cfg.resume == "last":
        if not cfg.out:
            raise KdedgeError("--resume without a checkpoint path needs --out RUN_FOLDER")
        return Path(cfg.out) / "last.safetensors"
    return Path(cfg.resume)


def resume_config(cfg_values: Dict[str, Any], explicit: Dict[str, Any]) -> TrainConfig:
    """Config of a resumed run: the checkpoint's own config, with only the explicitly given options on top."""
    from kdedge.distill.config import from_dict

    base = from_dict(cfg_values, source="checkpoint config")
    return from_dict(explicit, base=base, source="options")


def check_compatible(header: Dict[str, Any], path: Path, cfg: TrainConfig, model_args: Dict[str, Any]) -> None:
    want = dict(model_args, scale=cfg.scale, color=cfg.color)
    if header.get("arch") != cfg.student or header.get("model_args") != want:
        raise KdedgeError("cannot resume from %s: it holds %s %s, this run builds %s %s"
                          % (path, header.get("arch"), header.get("model_args"), cfg.student, want),
                          fix="resume with the same student options, or start a new run (another --out)")
    if "train_state" not in header:
        raise KdedgeError("cannot resume from %s: it holds weights only, no training state" % path,
                          fix="resume from last.safetensors (best.safetensors is for deployment)")


def load_images(cfg: TrainConfig):
    """(training images, validation images), with the protocol's filters applied."""
    min_size = cfg.patch * cfg.scale
    if cfg.data:
        train = folder_images(cfg.data, cfg.scale, min_size)
    else:
        train = [im for im in embedded_images() if min(im.pixels.shape[:2]) >= min_size]
    if cfg.val:
        val = folder_images([cfg.val], cfg.scale, 8 * cfg.scale)
    elif not cfg.data:
        val = [im for im in train if im.name in EMBEDDED_VAL] or train[-1:]
        train = [im for im in train if im not in val]
    else:
        n = min(cfg.val_holdout, len(train) - 1)
        val, train = (train[-n:], train[:-n]) if n > 0 else (train[-1:], train)
    if not train:
        raise KdedgeError("no training images left after filtering (need >= %d px on a side at --patch %d x%d)"
                          % (min_size, cfg.patch, cfg.scale), fix="add images, or lower --patch")
    return train, val


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


# --------------------------------------------------------------------------- the loop

def train(cfg: TrainConfig, command: str = "distill") -> Dict[str, Any]:
    """Train (and distil, when cfg.teacher is set) a student; returns a summary dict of the run."""
    from kdedge.models import create_model
    from kdedge.models.descriptor import SRModel

    # ---- setup: device, ranks, run folder -------------------------------------------------------
    device = resolve_device(cfg.device)
    dist = ddp.setup(device.type)
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        resume_path = resolve_resume(cfg)
        out = Path(ddp.broadcast_object(dist, cfg.out or (str(resume_path.parent) if resume_path else default_out(command))))
        cfg.out = str(out)
        if cfg.batch % dist.world_size:
            raise KdedgeError("batch %d does not split over %d processes" % (cfg.batch, dist.world_size),
                              fix="use a batch that is a multiple of the process count")
        model_args = student_args(cfg)
        header = train_state = None
        if resume_path is not None:
            header = read_header(resume_path)
            check_compatible(header, resume_path, cfg, model_args)
        created = not out.exists()
        if dist.is_main:
            prepare_run_folder(out, resuming=resume_path is not None)
        ddp.barrier(dist)
        try:
            return _train(cfg, command, device, dist, out, model_args, resume_path, header, create_model, SRModel)
        except KdedgeError:
            # bad input found before any training (no images, bad teacher): leave no run folder that
            # holds nothing but config.yaml
            if dist.is_main and created and sorted(p.name for p in out.iterdir()) in ([], ["config.yaml"]):
                shutil.rmtree(str(out), ignore_errors=True)
            raise
    finally:
        _Stopper.restore_all()  # also after an exception in the loop
        ddp.cleanup(dist)


def _train(cfg, command, device, dist, out, model_args, resume_path, header, create_model, SRModel):
    main = dist.is_main
    if main:
        import yaml

        atomic_write_bytes(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())

    # ---- data: pairs in the student's colour space, teacher labels ------------------------------
    train_images, val_images = load_images(cfg)
    labelled = [make_sample(im, cfg.scale, cfg.color) for im in train_images]
    unlabeled_images = folder_images(cfg.extra_lr, 1, cfg.patch) if cfg.extra_lr else []
    if cfg.hr_as_lr:
        unlabeled_images += train_images
    footage_val: List = []  # held-out footage frames: validated by agreement with the teacher (no ground truth)
    if cfg.footage:
        footage = load_footage(cfg.footage, footage_options(cfg), min_size=cfg.patch)
        unlabeled_images += [Image(f.name, f.pixels) for f in footage.train]
        footage_val = [make_sample(Image(f.name, f.pixels), cfg.scale, cfg.color, with_hr=False) for f in footage.val]
        if main:
            print("footage: %d frames decoded, %d sampled for training, %d held out%s"
                  % (footage.read, len(footage.train), len(footage.val),
                     ("; failed: " + ", ".join(footage.failed_sources)) if footage.failed_sources else ""))
    unlabeled = [make_sample(im, cfg.scale, cfg.color, with_hr=False) for im in unlabeled_images]
    val_pairs = make_val_pairs(val_images, cfg.scale)

    teacher = load_teacher(cfg, device)
    online = teacher is not None and (cfg.feat_weight > 0 or (cfg.kd_weight > 0 and cfg.teacher_cache == "off"))
    cached = teacher is not None and cfg.kd_weight > 0 and not online
    if cached:
        cache = TeacherCache(teacher, cfg.color, mode=cfg.teacher_cache, folder=cfg.cache_dir or None, device=str(device))
        t0 = time.time()
        if cfg.teacher_cache == "disk" and dist.enabled:
            # Rank 0 labels, the others then read its files instead of repeating the work.
            if main:
                cache.fill(labelled + unlabeled + footage_val, progress=cfg.progress)
            ddp.barrier(dist)
        cache.fill(labelled + unlabeled + footage_val, progress=cfg.progress and main)
        if main and cfg.progress:
            print("teacher labels: %d images in %.1f s (%s cache, %d computed)"
                  % (len(labelled) + len(unlabeled), time.time() - t0, cfg.teacher_cache, cache.misses))
    if online and unlabeled:
        raise KdedgeError("images without ground truth need the teacher cache (teacher_cache memory or disk)")
    sampler = PatchSampler(labelled, unlabeled, cfg.patch, cfg.scale, cfg.unlabeled_ratio,
                           need_teacher=cached, need_teacher_input=online)

    # ---- student, optimizer, EMA, feature adapters ----------------------------------------------
    torch.manual_seed(cfg.seed)
    module = create_model(cfg.student, scale=cfg.scale, color=cfg.color, **model_args).to(device)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    module = module.to(memory_format=memory_format)
    distiller = None
    if online and cfg.feat_weight > 0:
        teacher.module.to(memory_format=memory_format)
        c = 1 if cfg.color == "y" else 3
        probe = (torch.rand(1, c, cfg.patch, cfg.patch, device=device), torch.rand(1, 3, cfg.patch, cfg.patch, device=device))
        distiller = FeatureDistiller(module, teacher.module, parse_pairs(cfg.feat_pairs), probe,
                                     teacher_fn=lambda x: teacher_forward(teacher, x, cfg.color)).to(device)
    params = list(module.parameters()) + (list(distiller.adapters.parameters()) if distiller else [])
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay)
    ema = EMA(module, cfg.ema) if cfg.ema > 0 else None

    step, best, elapsed, rows = 0, float("-inf"), 0.0, []
    if resume_path is not None:
        _, header, state = load_checkpoint_full(resume_path, device="cpu")
        unwrap(module).load_state_dict(state["model"] if state.get("model") is not None else _weights(resume_path))
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.module.load_state_dict(_weights(resume_path))
        if distiller is not None and state.get("adapters") is not None:
            distiller.adapters.load_state_dict(state["adapters"])
        torch.set_rng_state(state["torch_rng"])
        step, best, elapsed = int(state["step"]), float(state["best"]), float(state["elapsed"])
        if main:
            rows = read_metrics(out / "metrics.csv", step)
            print("resumed %s at step %d (best val %.2f dB)" % (resume_path, step, best))

    model = module
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(module, device_ids=[dist.local_rank] if device.type == "cuda" else None)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = None
    if use_amp and amp_dtype == torch.float16:  # bfloat16 needs no loss scaling (not executed here: no GPU)
        scaler = torch.amp.GradScaler("cuda") if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler") \
            else torch.cuda.amp.GradScaler()

    def deploy_module():
        return ema.module if ema is not None else unwrap(module)

    def checkpoint(path: Path, with_state: bool, val_psnr: Optional[float]) -> None:
        state = None
        if with_state:
            state = {
                "model": unwrap(module).state_dict() if ema is not None else None,
                "optimizer": optimizer.state_dict(),
                "adapters": distiller.adapters.state_dict() if distiller is not None else None,
                "torch_rng": torch.get_rng_state(),
                "step": step, "best": best, "elapsed": elapsed + (time.time() - t_start),
            }
        try:
            save_checkpoint(path, deploy_module(), arch=cfg.student, model_args=model_args, scale=cfg.scale,
                            color=cfg.color, step=step, best_metric=best if best > float("-inf") else None,
                            teacher=teacher_info, config=cfg.to_dict(), train_state=state,
                            extra={"val_psnr_y": val_psnr, "val_images": [p.name for p in val_pairs],
                                   "world_size": dist.world_size})
        except OSError as exc:  # written atomically: the previous checkpoint at `path` is still whole
            err = from_os_error(exc, str(path), "saving the step-%d checkpoint failed" % step)
            raise KdedgeError(err.message, fix="%s; then `kdedge %s --resume --out %s` continues from the last "
                                               "checkpoint saved (still intact)" % (err.fix or "fix the cause", command, out)) from exc

    def measure(metric, samples) -> float:
        """metric(SRModel of the deployed weights, samples), leaving the module's train/eval mode as it was."""
        m = deploy_module()
        was_training = m.training
        value = metric(SRModel(m, cfg.student, cfg.scale, cfg.color), samples)
        m.train(was_training)
        return value

    teacher_info = None
    if teacher is not None:
        teacher_info = {"spec": cfg.teacher, "arch": teacher.arch, "scale": teacher.scale, "color": teacher.color,
                        "weights": cfg.teacher_weights or None}

    # ---- the loop -------------------------------------------------------------------------------
    rng = np.random.default_rng([cfg.seed, dist.rank, step])
    per_rank = cfg.batch // dist.world_size
    bar = None
    if main and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, unit="step", dynamic_ncols=True, desc=command)
    t_start, t_log, steps_since_log = time.time(), time.time(), 0
    last_val = None
    module.train()
    end = min(cfg.steps, cfg.stop_at) if cfg.stop_at > 0 else cfg.steps
    # SIGINT/SIGTERM: finish the step in progress, save last.safetensors, then stop (no step lost).
    # Not under DDP: every rank would have to agree on the stopping step first.
    stopper = _Stopper(enabled=not dist.enabled)
    interrupted = None
    while step < end:
        if stopper.signal is not None:
            interrupted = stopper.signal
            break
        lr = lr_at(step, cfg)
        for g in optimizer.param_groups:
            g["lr"] = lr
        batch = {k: torch.from_numpy(v).to(device) for k, v in sampler.sample(per_rank, rng).items()}
        x = batch["lr"].contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            teacher_out = None
            if online:
                with torch.no_grad():
                    teacher_out = teacher_forward(teacher, batch["teacher_input"].contiguous(memory_format=memory_format), cfg.color)
            pred = model(x)
            terms = loss_terms(cfg, pred, batch, distiller, teacher_out)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(terms["total"]).backward()
            scaler.unscale_(optimizer)
        else:
            terms["total"].backward()
        if distiller is not None:
            ddp.average_gradients(dist, distiller.adapters.parameters())
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if ema is not None:
            ema.update(unwrap(module), step)
        step += 1
        steps_since_log += 1
        if bar is not None:
            bar.update(1)

        do_eval = step % cfg.eval_interval == 0 or step == end
        if main and (step % cfg.log_interval == 0 or do_eval):
            # .item() forces a device sync: only here, every log_interval steps.
            now = time.time()
            row = {"step": step, "seconds": round(elapsed + now - t_start, 2), "lr": "%.3g" % lr,
                   "ms_per_step": round(1000 * (now - t_log) / steps_since_log, 1)}
            row.update({k if k != "total" else "loss": "%.6f" % v.item() for k, v in terms.items()})
            t_log, steps_since_log = now, 0
            if do_eval:
                last_val = measure(validate_psnr, val_pairs)
                row["val_psnr"] = "%.3f" % last_val
                if footage_val:
                    row["footage_agree_psnr"] = "%.3f" % measure(agreement_psnr, footage_val)
            rows.append(row)
            write_metrics(out / "metrics.csv", rows)
            if bar is not None:
                bar.set_postfix(loss=row["loss"][:7], psnr="%.2f" % last_val if last_val else "-", refresh=False)
        if do_eval:
            if main:
                if last_val > best:
                    best = last_val
                    checkpoint(out / "best.safetensors", with_state=False, val_psnr=last_val)
                checkpoint(out / "last.safetensors", with_state=True, val_psnr=last_val)
                if cfg.plot:
                    plot_curve(out / "curve.png", rows, "%s %s x%d (%s)" % (command, cfg.student, cfg.scale, out.name))
                if bar is not None:
                    bar.write("step %d/%d  loss %s  val Y-PSNR %.2f dB  best %.2f dB"
                              % (step, cfg.steps, rows[-1].get("loss"), last_val, best))
            best = ddp.broadcast_object(dist, best)
            ddp.barrier(dist)
            # Re-seed so that a run resumed from this checkpoint draws exactly these patches next.
            rng = np.random.default_rng([cfg.seed, dist.rank, step])
    stopper.restore()
    if bar is not None:
        bar.close()
    if interrupted is not None and main:
        if rows:
            write_metrics(out / "metrics.csv", rows)
        checkpoint(out / "last.safetensors", with_state=True, val_psnr=last_val)
        print("%s received: stopped after step %d of %d; saved %s (resume: kdedge %s --resume --out %s)"
              % (interrupted, step, cfg.steps, out / "last.safetensors", command, out), flush=True)
    return {
        "interrupted": interrupted, "out": str(out), "step": step, "best_psnr": best, "val_psnr": last_val,
        "seconds": elapsed + time.time() - t_start,
        "last": str(out / "last.safetensors"), "best": str(out / "best.safetensors"),
        "val_images": [p.name for p in val_pairs], "is_main": main, "world_size": dist.world_size,
    }


def _weights(path: Path) -> Dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(path)).items() if not k.startswith("_train/")}


class _Stopper:
    """SIGINT/SIGTERM handlers that only record the signal (the loop stops at the next step boundary);
    a second signal interrupts at once. Installed from the main thread only; `restore()` puts back
    the previous handlers."""

    def __init__(self, enabled: bool = True):
        self.signal = None  # type: Optional[str]
        self.old = {}  # type: Dict[int, Any]
        if enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, self._handle)
            _Stopper.active.append(self)

    def _handle(self, signum, _frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt  # a second signal: out now (the checkpoint of the last eval stays)
        self.signal = signal.Signals(signum).name
        print("\n%s received: finishing this step and saving a checkpoint (again to abort)" % self.signal, flush=True)

    def restore(self) -> None:
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        self.old = {}

    active = []  # type: List[_Stopper]

    @classmethod
    def restore_all(cls) -> None:
        while cls.active:
            cls.active.pop().restore()
