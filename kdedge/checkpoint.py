"""kdedge checkpoints: one safetensors file that rebuilds its own model (nanoGPT's habit).

Layout of `run/last.safetensors` (and `best.safetensors`, and the shipped `kdedge/assets/*`):
- tensors named like the model's `state_dict()` keys: the weights to deploy (the EMA weights when the
  run keeps an EMA);
- optionally tensors under `_train/...`: the resumable training state (raw weights, optimizer,
  scheduler, RNG, feature adapters), whose non-tensor structure is kept as JSON in the header. Keeping
  it in the same file means one `os.replace` publishes a consistent pair, never a model from one step
  and an optimizer from another;
- safetensors metadata key `kdedge`: a JSON header {format, arch, model_args, scale, color, step,
  best_metric, teacher, config, kdedge_version, ...}. `load_checkpoint` reads `arch` + `model_args`
  from it and builds the model with the registry: no pickle, no guessing from tensor shapes.

Writes are atomic (`kdedge.common.atomic_write_bytes`: temporary file in the same folder, fsync,
`os.replace`): a `kill -9` at any moment leaves either the previous file or the new one, never a
truncated one.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from kdedge import __version__
from kdedge.common import atomic_write_bytes
from kdedge.errors import KdedgeError

FORMAT = "kdedge-checkpoint/1"
META_KEY = "kdedge"
TRAIN_PREFIX = "_train/"

PathLike = Union[str, Path]


# --------------------------------------------------------------------------- nested state <-> flat tensors

def _flatten(obj: Any, prefix: str, tensors: Dict[str, Any]) -> Any:
    """Replace every tensor in a nested dict/list by {"__tensor__": key}, collecting the tensors."""
    import torch

    if isinstance(obj, torch.Tensor):
        key = prefix.rstrip("/")
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        # Keys may be ints (optimizer state); JSON would turn them into strings, so record them.
        return {"__dict__": [[_flatten(k, prefix, {}), _flatten(v, "%s%s/" % (prefix, k), tensors)]
                             for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [_flatten(v, "%s%d/" % (prefix, i), tensors) for i, v in enumerate(obj)],
                "tuple": isinstance(obj, tuple)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError("cannot store %r (%s) in a checkpoint" % (obj, type(obj).__name__))


def _unflatten(obj: Any, tensors: Dict[str, Any]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            items = [_unflatten(v, tensors) for v in obj["__list__"]]
            return tuple(items) if obj.get("tuple") else items
    return obj


# --------------------------------------------------------------------------- save / load

def unwrap(module):
    """The plain module behind DDP / torch.compile wrappers (what a checkpoint must hold)."""
    while True:
        if hasattr(module, "module") and type(module).__name__ in ("DistributedDataParallel", "DataParallel"):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod
        else:
            return module


def save_checkpoint(path: PathLike, module, *, arch: str, model_args: Dict[str, Any], scale: int, color: str,
                    step: int = 0, best_metric: Optional[float] = None, teacher: Optional[Dict[str, Any]] = None,
                    config: Optional[Dict[str, Any]] = None, extra: Optional[Dict[str, Any]] = None,
                    train_state: Optional[Dict[str, Any]] = None) -> Path:
    """Write a self-describing checkpoint atomically; `train_state` (nested, with tensors) is optional."""
    from safetensors.torch import save

    module = unwrap(module)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    header: Dict[str, Any] = {
        "format": FORMAT,
        "arch": arch,
        "model_args": dict(model_args, scale=scale, color=color),
        "scale": int(scale),
        "color": color,
        "step": int(step),
        "best_metric": best_metric,
        "teacher": teacher,
        "config": config,
        "kdedge_version": __version__,
    }
    if extra:
        header.update(extra)
    if train_state is not None:
        header["train_state"] = _flatten(train_state, TRAIN_PREFIX, tensors)
    data = save(tensors, metadata={META_KEY: json.dumps(header, default=_json_default)})
    atomic_write_bytes(path, data)
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError("not JSON-serialisable: %r" % (obj,))


def read_header(path: PathLike) -> Dict[str, Any]:
    """The JSON header of a kdedge checkpoint; KdedgeError for a missing, corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise KdedgeError("checkpoint %s does not exist" % path, fix="check the path (runs write last.safetensors and best.safetensors)")
    if path.suffix.lower() in (".pth", ".pt", ".ckpt", ".bin", ".onnx"):
        raise KdedgeError("%s is not a kdedge checkpoint (%s; kdedge checkpoints are .safetensors with a header)"
                          % (path, path.suffix), fix="give last.safetensors (resume) or best.safetensors of a run folder; "
                                                    "third-party weights go to --teacher-weights or --weights")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises SafetensorError / OSError subclasses for bad files
        raise KdedgeError("checkpoint %s is unreadable or truncated: %s" % (path, exc),
                          fix="use another checkpoint (best.safetensors / last.safetensors) or retrain") from exc
    if META_KEY not in meta:
        raise KdedgeError("%s is a safetensors file without a kdedge header" % path,
                          fix="give --arch with --weights for plain weight files, or a checkpoint written by kdedge")
    try:
        header = json.loads(meta[META_KEY])
    except ValueError as exc:
        raise KdedgeError("checkpoint %s has a corrupt header: %s" % (path, exc)) from exc
    if not isinstance(header, dict) or not str(header.get("format", "")).startswith("kdedge-checkpoint/"):
        raise KdedgeError("checkpoint %s has an unknown header format %r" % (path, header.get("format") if isinstance(header, dict) else None))
    return header


def _read_tensors(path: PathLike) -> Dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # see read_header
        raise KdedgeError("checkpoint %s is unreadable or truncated: %s" % (path, exc)) from exc


def load_checkpoint_full(path: PathLike, device: str = "cpu") -> Tuple[Any, Dict[str, Any], Optional[Dict[str, Any]]]:
    """(SRModel, header, train_state or None): what `--resume` needs."""
    from kdedge.models import create_model
    from kdedge.models.descriptor import SRModel

    header = read_header(path)
    tensors = _read_tensors(path)
    arch, model_args = header.get("arch"), dict(header.get("model_args") or {})
    try:
        module = create_model(arch, **model_args)
    except KdedgeError as exc:
        raise KdedgeError("checkpoint %s: %s" % (path, exc.message), fix=exc.fix or "upgrade kdedge") from exc
    except TypeError as exc:
        raise KdedgeError("checkpoint %s: architecture %r does not take %s" % (path, arch, exc),
                          fix="this checkpoint was written by another kdedge version") from exc
    weights = {k: v for k, v in tensors.items() if not k.startswith(TRAIN_PREFIX)}
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise KdedgeError("checkpoint %s: weights do not fit %s%s: %s" % (path, arch, model_args, exc)) from exc
    module.to(device).eval()
    train_state = None
    if "train_state" in header:
        train_state = _unflatten(header["train_state"], tensors)
    meta = {k: header.get(k) for k in ("teacher", "step", "best_metric", "kdedge_version", "config", "qat")}
    meta["checkpoint"] = str(path)
    model = SRModel(module=module, arch=arch, scale=int(header["scale"]), color=header["color"],
                    model_args=dict(model_args), meta=meta)
    return model, header, train_state


def load_checkpoint(path: PathLike, device: str = "cpu"):
    """Rebuild the model a kdedge checkpoint describes -> `SRModel` (eval mode)."""
    return load_checkpoint_full(path, device)[0]
