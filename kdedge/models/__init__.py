"""Model registry (timm-style) and the descriptor every model comes wrapped in.

`@register_model` makes the decorated builder's function name the model name; `create_model(name,
**overrides)` builds one, ignoring overrides whose value is None (so CLI flags left unset never
override a model's defaults); `list_models()` lists what exists. Families register themselves when
their module is imported; `_import_families()` imports them all lazily, the first time the registry
is consulted, so `import kdedge.models` stays light.
"""
from __future__ import annotations

import fnmatch
import importlib
from typing import Callable, Dict, List, Tuple

from kdedge.errors import KdedgeError

_REGISTRY: Dict[str, Callable] = {}
# Modules whose import registers model families (they import torch, hence imported on first use).
_FAMILY_MODULES = [
    "kdedge.models.imdn",
    "kdedge.models.rlfn",
    "kdedge.models.students",
]
_imported = False


def register_model(fn: Callable) -> Callable:
    """Register a builder `fn(**kwargs) -> torch.nn.Module` under its function name."""
    name = fn.__name__
    if name in _REGISTRY and _REGISTRY[name] is not fn:
        raise ValueError("model %r registered twice" % name)
    _REGISTRY[name] = fn
    return fn


def _import_families() -> None:
    global _imported
    if _imported:
        return
    for module in _FAMILY_MODULES:
        importlib.import_module(module)  # a family that fails to import is an error, not a missing name
    _imported = True


def list_models(pattern: str = "*") -> List[str]:
    _import_families()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def registered_by(module: str) -> Tuple[str, ...]:
    """Names registered so far by `module`, in registration order (how a family lists its own models)."""
    return tuple(n for n, fn in _REGISTRY.items() if fn.__module__ == module)


def is_model(name: str) -> bool:
    _import_families()
    return name in _REGISTRY


def create_model(name: str, **overrides):
    """Build a registered model; overrides that are None are dropped."""
    _import_families()
    if name not in _REGISTRY:
        raise KdedgeError(
            "unknown architecture %r" % name,
            fix="choose one of: %s" % ", ".join(list_models()),
        )
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    return _REGISTRY[name](**kwargs)
