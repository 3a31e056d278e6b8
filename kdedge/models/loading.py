"""`load_model`: one call from whatever a user names to a ready `SRModel`.

A spec can be
- an architecture name plus weights: `load_model("imdn", weights="IMDN_x2.pth")`;
- a zoo name: `load_model("imdn_x2")` (fetched and verified by `kdedge.models.zoo`; a `weights`
  path given with it is used instead of the cache, after checking it is that model);
- a weights file: `load_model("rlfn_x4.pth")`, architecture and hyper-parameters detected;
- a kdedge checkpoint (`.safetensors` whose header names an architecture): delegated to
  `kdedge.checkpoint.load_checkpoint`;
- `spandrel` plus weights, to force spandrel for a file kdedge would otherwise detect itself.

Detection is spandrel-style but strict: each kdedge architecture reads its hyper-parameters off tensor
shapes and then requires every key and shape to match (`kdedge.models.weights.state_dict_matches`), so
at most one architecture can claim a state dict (`detect_architecture` checks that too). What no
kdedge architecture claims goes to spandrel's `ModelLoader`, imported only then (it needs torchvision).
Weights of the wrong architecture or scale are refused with a message saying what the file holds.
ONNX files and bundles are the evaluation code's business, not this module's.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

from kdedge.errors import KdedgeError
from kdedge.models.descriptor import SRModel

# kdedge architecture families with a detector: family module -> registry names it can report.
_DETECTORS = ("kdedge.models.imdn", "kdedge.models.rlfn")
# Registry names that are the same network at different widths: asking for one and loading the
# other is fine (the file decides the width), asking for another family is not.
_FAMILY = {"imdn": "imdn", "rlfn": "rlfn", "rlfn_s": "rlfn"}
_DISPLAY = {"imdn": "IMDN", "rlfn": "RLFN", "rlfn_s": "RLFN-S"}
# safetensors header keys that mark a kdedge checkpoint rather than plain third-party weights.
_CHECKPOINT_KEYS = ("arch", "kdedge", "kdedge_format", "model_args")


def detect_architecture(state_dict: Dict[str, Any]) -> Optional[Tuple[str, Dict[str, Any]]]:
    """(registry name, hyper-parameters) of the one kdedge architecture that claims `state_dict`."""
    import importlib

    claims = []
    for module_name in _DETECTORS:
        found = importlib.import_module(module_name).detect(state_dict)
        if found is not None:
            claims.append(found)
    if len(claims) > 1:  # a detector bug, not a user error: keep the traceback
        raise RuntimeError("state dict claimed by several architectures: %s" % [c[0] for c in claims])
    return claims[0] if claims else None


def describe(arch: str, args: Dict[str, Any]) -> str:
    """'an x2 IMDN (nf=64, num_modules=6)' style text for messages."""
    extra = ", ".join("%s=%s" % (k, v) for k, v in args.items() if k not in ("scale", "in_channels", "out_channels"))
    return "an x%d %s (%s)" % (args.get("scale", 0), _DISPLAY.get(arch, arch), extra)


def build_sr_model(arch: str, args: Dict[str, Any], state_dict: Optional[Dict[str, Any]] = None,
                   meta: Optional[Dict[str, Any]] = None) -> SRModel:
    """Build a kdedge architecture, load `state_dict` strictly, wrap it with the family's descriptor."""
    import importlib

    from kdedge.models import create_model

    module = create_model(arch, **args)
    if state_dict is not None:
        module.load_state_dict(state_dict, strict=True)
    family = importlib.import_module("kdedge.models.%s" % _FAMILY.get(arch, arch))
    desc = dict(getattr(family, "DESCRIPTOR", {}))
    info = {"paper": getattr(family, "PAPER", "")}
    info.update(meta or {})
    return SRModel(module=module.eval(), arch=arch, scale=int(args["scale"]), model_args=dict(args), meta=info, **desc)


def _provenance(path: str, zoo_name: Optional[str] = None) -> Dict[str, Any]:
    from kdedge.common import sha256_file

    meta = {"weights": os.path.abspath(path), "sha256": sha256_file(path)}
    if zoo_name:
        meta["zoo"] = zoo_name
    return meta


def _spandrel_model(state_dict: Dict[str, Any], path: str, reason: str) -> SRModel:
    """Wrap a spandrel-loaded model as an SRModel (arch `spandrel:<id>`)."""
    try:
        from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError
    except ImportError as exc:
        raise KdedgeError(
            "%s %s, and spandrel (for other architectures) cannot be imported: %s" % (path, reason, exc),
            fix="pip install 'kdedge[spandrel]' (spandrel needs torchvision; with the CPU/CUDA torch pair "
            "torch==2.14.1 torchvision==0.29.1, install spandrel with --no-deps)",
        ) from exc
    try:
        desc = ModelLoader().load_from_state_dict(state_dict)
    except UnsupportedModelError as exc:
        raise KdedgeError(
            "%s %s, and spandrel does not recognise it either" % (path, reason),
            fix="kdedge loads imdn, rlfn, rlfn_s and every architecture spandrel supports; check the file",
        ) from exc
    if not isinstance(desc, ImageModelDescriptor) or desc.purpose not in ("SR", "Restoration"):
        raise KdedgeError("%s holds a spandrel %s model for %s, not an image super-resolution model"
                          % (path, desc.architecture.id, desc.purpose))
    if desc.input_channels != desc.output_channels or desc.input_channels not in (1, 3):
        raise KdedgeError("%s: spandrel model %s maps %d to %d channels; kdedge handles 1->1 or 3->3"
                          % (path, desc.architecture.id, desc.input_channels, desc.output_channels))
    req = desc.size_requirements
    meta = {
        "spandrel_tags": list(desc.tags),
        "min_size": req.minimum,
        "square": req.square,
        "supports_half": desc.supports_half,
        "supports_bfloat16": desc.supports_bfloat16,
    }
    meta.update(_provenance(path))
    return SRModel(
        module=desc.model.eval(), arch="spandrel:%s" % desc.architecture.id, scale=int(desc.scale),
        # A 1-channel spandrel model is a grayscale model; kdedge feeds it MATLAB Y / 255.
        color="rgb" if desc.input_channels == 3 else "y",
        value_range=1.0, size_multiple=max(1, int(req.multiple_of)), model_args={}, meta=meta,
    )


def load_weights_file(path: str, arch: Optional[str] = None, scale: Optional[int] = None,
                      zoo_name: Optional[str] = None) -> SRModel:
    """Load a weights file, detecting its architecture; check it against `arch`/`scale` when given."""
    from kdedge.models import is_model, list_models
    from kdedge.models.weights import load_state_dict

    if arch is not None and arch != "spandrel" and not is_model(arch):
        raise KdedgeError("unknown architecture %r" % arch, fix="choose one of: %s, spandrel" % ", ".join(list_models()))
    sd = load_state_dict(path)
    if arch == "spandrel":
        model = _spandrel_model(sd, path, "was given with --model spandrel")
    else:
        found = detect_architecture(sd)
        if found is None:
            if arch is not None and arch in _FAMILY:
                raise KdedgeError(
                    "%s is not an %s state dict (%d tensors, first key %r)" % (path, _DISPLAY[arch], len(sd), next(iter(sd))),
                    fix="give the weights published for %s, or pass the file alone as --model to detect its architecture" % arch,
                )
            if arch is not None and arch not in _FAMILY:
                # a registered architecture without a detector (a student): load strictly at its defaults
                return _load_undetected(arch, sd, path, scale)
            model = _spandrel_model(sd, path, "is not an IMDN, RLFN or RLFN-S state dict")
        else:
            found_arch, args = found
            if arch is not None and _FAMILY.get(arch) != _FAMILY.get(found_arch):
                raise KdedgeError(
                    "%s holds %s, not %s weights" % (path, describe(found_arch, args), _DISPLAY.get(arch, arch)),
                    fix="use --model %s with this file, or the %s weights" % (found_arch, arch),
                )
            if scale is not None and args["scale"] != scale:
                raise KdedgeError(
                    "%s holds %s, but x%d was asked for" % (path, describe(found_arch, args), scale),
                    fix="use the x%d weights, or --scale %d" % (scale, args["scale"]),
                )
            model = build_sr_model(found_arch, args, sd, meta=_provenance(path, zoo_name))
    if scale is not None and model.scale != scale:
        raise KdedgeError(
            "%s holds an x%d model (%s), but x%d was asked for" % (path, model.scale, model.arch, scale),
            fix="use the x%d weights, or --scale %d" % (scale, model.scale),
        )
    return model


def _load_undetected(arch: str, sd: Dict[str, Any], path: str, scale: Optional[int]) -> SRModel:
    from kdedge.models import create_model

    module = create_model(arch, scale=scale)
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise KdedgeError("%s does not fit architecture %s: %s" % (path, arch, str(exc).splitlines()[0]),
                          fix="check --model and --scale, or load a kdedge checkpoint (it records its own architecture)") from exc
    s = scale if scale is not None else getattr(module, "scale", None)
    if s is None:
        raise KdedgeError("cannot tell the scale of %s for architecture %s" % (path, arch), fix="pass --scale")
    return SRModel(module=module.eval(), arch=arch, scale=int(s), model_args={"scale": s}, meta=_provenance(path))


def _is_kdedge_checkpoint(path: str) -> bool:
    from kdedge.models.weights import read_safetensors_metadata

    meta = read_safetensors_metadata(path)
    return any(k in meta for k in _CHECKPOINT_KEYS) or any(k.startswith("kdedge") for k in meta)


def _load_checkpoint(path: str) -> SRModel:
    try:
        from kdedge.checkpoint import load_checkpoint
    except ImportError as exc:
        raise KdedgeError("%s is a kdedge checkpoint, but kdedge.checkpoint cannot be imported: %s" % (path, exc),
                          fix="install the training extra: pip install 'kdedge[train]'") from exc
    return load_checkpoint(path)


def load_model(spec: str, weights: Optional[str] = None, scale: Optional[int] = None, device: str = "cpu") -> SRModel:
    """An `SRModel` in eval mode on `device` from an architecture, zoo name, weights file or checkpoint."""
    from kdedge.models import is_model, list_models
    from kdedge.models import zoo

    if zoo.is_zoo_name(spec):
        entry = zoo.get_entry(spec)
        if scale is not None and scale != entry.scale:
            raise KdedgeError("zoo model %s is x%d, but x%d was asked for" % (spec, entry.scale, scale),
                              fix="choose an x%d model from `kdedge zoo list`" % scale)
        path = weights or str(zoo.weights_path(spec))
        arch = None if entry.arch == "spandrel" else entry.arch
        model = load_weights_file(path, arch=arch, scale=entry.scale, zoo_name=spec)
        if weights is None:
            model.meta["origin"] = entry.origin
    elif weights is not None:
        if not (spec == "spandrel" or is_model(spec)):
            raise KdedgeError("unknown architecture %r" % spec,
                              fix="choose one of: %s, spandrel; or a zoo name: %s" % (", ".join(list_models()), ", ".join(zoo.ZOO)))
        model = load_weights_file(weights, arch=spec, scale=scale)
    elif os.path.isfile(spec):
        if spec.lower().endswith(".safetensors") and _is_kdedge_checkpoint(spec):
            model = _load_checkpoint(spec)
            if scale is not None and model.scale != scale:
                raise KdedgeError("checkpoint %s is x%d, but x%d was asked for" % (spec, model.scale, scale))
        else:
            model = load_weights_file(spec, scale=scale)
    elif is_model(spec) or spec == "spandrel":
        raise KdedgeError("--model %s needs weights" % spec,
                          fix="add --weights FILE, or use a zoo name (%s)" % ", ".join(zoo.ZOO))
    else:
        hint = "no such file" if (os.sep in spec or "." in spec) else "unknown model"
        raise KdedgeError(
            "%s: %s" % (spec, hint),
            fix="give an architecture (%s) with --weights, a zoo name (%s), a weights file or a kdedge checkpoint"
            % (", ".join(list_models()), ", ".join(zoo.ZOO)),
        )
    return model.eval().to(device)
