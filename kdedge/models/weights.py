"""Read third-party weight files safely and bring them to one plain form: a flat state dict.

Published `.pth` files are pickles, and unpickling a stranger's file can run arbitrary code. So a
`.pth` is read only with `torch.load(weights_only=True)`, whose restricted unpickler accepts tensors,
storages and plain containers and refuses everything else; `.safetensors` files are read with the
`safetensors` package, which holds no code at all. A file that fails either way, or that does not
hold a mapping of names to tensors, is answered with a `KdedgeError` naming the file.

Training frameworks wrap their weights differently (BasicSR: `params_ema`/`params`; Lightning and
many scripts: `state_dict`/`model`; `nn.DataParallel`: a `module.` prefix on every key, as in IMDN's
published files; `torch.compile`: `_orig_mod.`). `canonicalize` unwraps all of them, the way
spandrel's `canonicalize_state_dict` does, so architecture detection sees one form.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

from kdedge.errors import KdedgeError

# Wrapper keys in the order they are tried: an EMA copy is the better model when both are present
# (BasicSR saves both and evaluates params_ema).
WRAPPER_KEYS = ("params_ema", "params-ema", "params", "state_dict", "model_state_dict", "model", "net", "net_g")
# Prefixes added by wrappers around the network (DataParallel, torch.compile); removed only when
# *every* key carries them, so a network that really has a submodule called `module` keeps its names.
# (`model.`/`net.` are not stripped: several architectures name their own trunk `model`.)
STRIP_PREFIXES = ("module.", "_orig_mod.", "netG.")

_TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".pkl")
_SAFETENSORS_SUFFIXES = (".safetensors", ".sft")


def _file_kind(path: str) -> str:
    """'torch' or 'safetensors', from the suffix, else from the first bytes."""
    lower = path.lower()
    if lower.endswith(_SAFETENSORS_SUFFIXES):
        return "safetensors"
    if lower.endswith(_TORCH_SUFFIXES):
        return "torch"
    with open(path, "rb") as f:
        head = f.read(9)
    # torch.save writes a zip archive (PK\x03\x04); the legacy format starts with a pickle opcode.
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return "torch"
    # safetensors: 8-byte little-endian header length, then a JSON object.
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    raise KdedgeError(
        "%s is neither a PyTorch (.pth) nor a safetensors weights file" % path,
        fix="give a .pth, .pt or .safetensors file",
    )


def read_safetensors_metadata(path: str) -> Dict[str, str]:
    """The string metadata of a safetensors file's header ({} when it has none)."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own SafetensorError and OSError subclasses
        raise KdedgeError("%s is not a readable safetensors file: %s" % (path, exc)) from exc


def _looks_like_torch_file(path: str) -> bool:
    """torch.save writes a zip (PK\\x03\\x04); legacy files are pickles (protocol 2+: \\x80)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return True
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _load_torch(path: str) -> Any:
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not _looks_like_torch_file(path):  # not a zip and not a pickle: random bytes, another format
            raise KdedgeError("%s is not a readable PyTorch weights file (%s)" % (path, str(exc).splitlines()[0]),
                              fix="check the file: it may be truncated or not a .pth at all") from exc
        raise KdedgeError(
            "%s holds pickled Python objects besides tensors; kdedge refuses to unpickle it "
            "(that could run arbitrary code)" % path,
            fix="re-save it from its own code as a plain state dict: torch.save(model.state_dict(), path), "
            "or convert it to .safetensors",
        ) from exc
    except Exception as exc:  # truncated zip, not a pickle at all, ...: torch raises many types here
        raise KdedgeError("%s is not a readable PyTorch weights file: %s" % (path, exc)) from exc


def _load_safetensors(path: str) -> Dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except Exception as exc:
        raise KdedgeError("%s is not a readable safetensors file: %s" % (path, exc)) from exc


def canonicalize(obj: Any, source: str = "state dict") -> Dict[str, Any]:
    """Unwrap training-framework containers and prefixes; return a flat {name: tensor} dict.

    Raises KdedgeError (naming `source`) when what is left is not a non-empty mapping of tensors.
    """
    import torch

    state = obj
    # Unwrap nested containers (e.g. {"state_dict": {"model": {...}}}) until no wrapper key is left.
    for _ in range(4):
        if not isinstance(state, dict):
            break
        inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not state:
        raise KdedgeError(
            "%s is not a state dict (it holds %s)" % (source, _describe(state)),
            fix="give a file saved with torch.save(model.state_dict(), path)",
        )
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise KdedgeError(
            "%s is not a state dict: %d of its %d entries are not tensors (e.g. %r holds %s)"
            % (source, len(not_tensors), len(state), not_tensors[0], _describe(state[not_tensors[0]])),
            fix="give a file saved with torch.save(model.state_dict(), path)",
        )
    state = {str(k): v for k, v in state.items()}
    stripped = True
    while stripped:
        stripped = False
        for prefix in STRIP_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                stripped = True
    return state


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a dict with keys %s" % ", ".join(repr(k) for k in list(value)[:5]) if value else "an empty dict"
    return "a value of type %s" % type(value).__name__


def load_state_dict(path: str) -> Dict[str, Any]:
    """Read a `.pth`/`.pt` (weights_only) or `.safetensors` file into a canonical state dict."""
    if not os.path.isfile(path):
        raise KdedgeError("weights file %s does not exist" % path, fix="check the path")
    kind = _file_kind(path)
    raw = _load_safetensors(path) if kind == "safetensors" else _load_torch(path)
    return canonicalize(raw, source=path)


def state_dict_matches(cls: Any, args: Dict[str, Any], state_dict: Dict[str, Any]) -> bool:
    """True when `cls(**args)` has exactly the keys of `state_dict`, each with the same shape.

    Architecture detectors call this after reading hyper-parameters off a few shapes, so a state
    dict is claimed only when *all* of it fits (the strictness spandrel's detectors lack).
    """
    import torch

    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            ref = cls(**args).state_dict()
    except (ValueError, RuntimeError, TypeError):
        return False
    if set(ref) != set(state_dict):
        return False
    return all(tuple(ref[k].shape) == tuple(state_dict[k].shape) for k in ref)


def split_upsampler_channels(channels: int, in_channels: int) -> Optional[Tuple[int, int]]:
    """Split a pixel-shuffle conv's out_channels = out * scale^2 into (scale, out).

    `out == in_channels` is tried first (an RGB-in network is RGB-out), then 3, then 1; None when
    no split fits.
    """
    for out in (in_channels, 3, 1):
        if out > 0 and channels % out == 0:
            s = int(round((channels // out) ** 0.5))
            if s >= 1 and s * s * out == channels:
                return s, out
    return None
