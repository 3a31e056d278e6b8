"""The steps of `kdedge export` other than INT8 (see int8.py), one function per artifact or verdict.

`stamp` (what every artifact is stamped with) -> `images` (calibration and validation sets) ->
`export_fp32` + `check_parity` -> [INT8, int8.py] -> `export_fp16` -> `accuracy` (the table) ->
`gate` (`--max-drop`) -> `report_rows` (extra folders) -> `manifest` -> `write_bundle` (whole-frame
graphs, then manifest.json through the runtime's `Manifest`). `kdedge.export.api` runs them in order.

Calibration and validation images are kept apart: with the shipped `calib_data/` (or `--calib DIR`
without `--val`), every 5th image (sorted by name) is held out for validation and never calibrated
on; the method and exclusion choices are measured on the calibration images, the gate on the
held-out (or `--val`) ones, so the gate is not graded on the data that tuned it.
"""
from __future__ import annotations

import datetime
import os
import time
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from kdedge.errors import KdedgeError

HOLDOUT_EVERY = 5
DEFAULT_SHAPES_LR = {"min": (8, 8), "opt": (270, 480), "max": (1088, 1920)}
PARITY_MAX_ABS = 1e-4  # torch vs ONNX Runtime FP32: above this an op was exported wrongly


class Artifact(NamedTuple):
    """One model of the accuracy table: its manifest `precisions` entry (None: measured, never
    shipped, e.g. the naive INT8 baseline) and what the table runs (a path or an ONNX ModelProto)."""

    entry: Optional[Dict[str, Any]]
    model: Any


class Stamp(NamedTuple):
    """Provenance written into every artifact's ONNX metadata and into the manifest."""

    name: str
    created: str
    tools: Dict[str, str]
    checkpoint_sha256: Optional[str]

    def metadata(self, model, **more: str) -> Dict[str, str]:
        return dict({"kdedge_name": self.name, "kdedge_arch": model.arch, "kdedge_scale": str(model.scale),
                     "kdedge_color": model.color, "kdedge_version": self.tools["kdedge"],
                     "kdedge_created": self.created, "kdedge_source_sha256": self.checkpoint_sha256 or ""}, **more)


class Images(NamedTuple):
    calib_inputs: Optional[List[Any]]  # LR model inputs (INT8 only)
    calib_set: Any  # ValSet of the calibration images: the sensitivity pass scores drops on it (INT8 only)
    val: Any  # ValSet the gate decides on
    calib_label: str  # how the manifest names the calibration folder (no machine paths)


def stamp(model, source_path: Optional[str], name: Optional[str]) -> Stamp:
    from kdedge.runtime.bundle import sha256_file

    sha = sha256_file(source_path) if source_path and os.path.isfile(source_path) else None
    return Stamp(name or "kdedge-%s-x%d" % (model.arch.replace("spandrel:", ""), model.scale),
                 datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), _tool_versions(), sha)


def _tool_versions() -> Dict[str, str]:
    import importlib

    import kdedge

    out = {"kdedge": kdedge.__version__}
    for mod in ("torch", "onnx", "onnxruntime", "openvino", "onnxslim", "onnxconverter_common", "numpy"):
        try:
            out[mod] = importlib.import_module(mod).__version__
        except Exception:  # a missing optional tool is recorded as absent, not an error
            continue
    return out


def logged(log, name: str, path: Path, t0: float) -> None:
    """One line per artifact, as ultralytics' try_export does: format, file, time, size."""
    log("%-9s %-22s %6.1f s %7.1f KB" % (name, Path(path).name, time.time() - t0, Path(path).stat().st_size / 1024.0))


# --------------------------------------------------------------------------- images


def split_holdout(names: Sequence[str]) -> (List[int], List[int]):
    """(calibration indices, held-out validation indices): every HOLDOUT_EVERY-th image is held out."""
    held = [i for i in range(len(names)) if i % HOLDOUT_EVERY == 0]
    return [i for i in range(len(names)) if i % HOLDOUT_EVERY != 0], held


def images(opts, model) -> Images:
    """The calibration and validation sets of this export.

    INT8: calibration from --calib (default calib_data/), validation from --val or the held-out fifth.
    No INT8: no calibration; validation from --val, else all of calib_data/ (nothing was tuned on it).
    """
    from kdedge.export import calibrate as cal
    from kdedge.export.report import ValSet

    calib_dir = Path(opts.calib) if opts.calib else cal.default_calib_dir()
    label = str(opts.calib) if opts.calib else "calib_data/"
    if not opts.int8:
        val = ValSet.from_folder(opts.val or calib_dir, model.scale, model.color)
        if not opts.val:
            val.label = label
        return Images(None, None, val, label)
    paths = cal.list_images(calib_dir)
    pixels = cal.read_images(paths)
    names = [p.name for p in paths]
    if opts.val:
        calib_idx = list(range(len(paths)))
        val = ValSet.from_folder(opts.val, model.scale, model.color)
    else:
        calib_idx, held_idx = split_holdout(names)
        val = ValSet([pixels[i] for i in held_idx], [paths[i].stem for i in held_idx], model.scale, model.color,
                     label="%s (held out: every %dth image)" % (label, HOLDOUT_EVERY))
    small = [names[i] for i in calib_idx if min(pixels[i].shape[:2]) < 8 * model.scale]
    if small:
        raise KdedgeError("calibration images smaller than %d px in %s: %s" % (8 * model.scale, calib_dir, ", ".join(small)),
                          fix="remove them or use larger images")
    if len(calib_idx) < opts.min_calib_images:
        raise KdedgeError(
            "calibration folder %s has %d usable image(s)%s; INT8 calibration needs at least %d"
            % (calib_dir, len(calib_idx), "" if opts.val else " after holding out every %dth for validation" % HOLDOUT_EVERY,
               opts.min_calib_images),
            fix="add more photos (a few dozen is good), pass --val DIR so none is held out, or omit --calib",
        )
    calib = [pixels[i] for i in calib_idx]
    calib_set = ValSet(calib, [paths[i].stem for i in calib_idx], model.scale, model.color, label)
    if len(val) == 0:
        raise KdedgeError("no validation images", fix="pass --val DIR")
    return Images(cal.lr_inputs(calib, model.scale, model.color), calib_set, val, label)


# --------------------------------------------------------------------------- FP32, FP16


def export_fp32(model, folder: Path, file: str, stamp_: Stamp, log) -> Path:
    from kdedge.export.onnx_export import export_onnx

    t0 = time.time()
    path = export_onnx(model, folder / file, metadata=stamp_.metadata(model, kdedge_precision="fp32"))
    logged(log, "fp32", path, t0)
    return path


def check_parity(model, fp32: Path, val, log) -> Dict[str, Any]:
    """torch vs ONNX Runtime on random inputs and two validation images; above PARITY_MAX_ABS is an error."""
    from kdedge.export.onnx_export import check_parity as parity_of

    parity = parity_of(model, fp32, real_inputs=[it.x for it in (val.items[:2] if val else [])])
    log("parity torch vs ONNX Runtime: max abs %.2e (random %.2e, real %s)"
        % (parity["max_abs"], parity["random_max_abs"],
           "-" if parity["real_max_abs"] is None else "%.2e" % parity["real_max_abs"]))
    if not parity["max_abs"] <= PARITY_MAX_ABS:
        raise KdedgeError("ONNX export of %s differs from torch by %.3g (> 1e-4)" % (model.arch, parity["max_abs"]),
                          fix="an op is exported wrongly; report it with the checkpoint")
    return parity


def export_fp16(model, fp32: Path, folder: Path, file: str, stamp_: Stamp, log) -> Artifact:
    import onnx

    from kdedge.export.fp16 import convert_fp16
    from kdedge.export.onnx_export import save_model, set_metadata

    t0 = time.time()
    half = convert_fp16(onnx.load(str(fp32)))
    set_metadata(half, stamp_.metadata(model, kdedge_precision="fp16"))
    path = save_model(half, folder / file)
    logged(log, "fp16", path, t0)
    return Artifact({"file": file, "converter": half.doc_string}, path)


# --------------------------------------------------------------------------- accuracy and the gate


def accuracy(artifacts: Dict[str, Artifact], val, scale: int, log) -> List[Dict[str, Any]]:
    from kdedge.export.report import accuracy_table, format_table

    table = accuracy_table({k: a.model for k, a in artifacts.items()}, val)
    log(format_table(table, "accuracy (standard protocol, Y, shave=%d):" % scale))
    return table


def gate(table: List[Dict[str, Any]], max_drop: float, val_label: str, sensitivity: Optional[Dict[str, Any]], log) -> None:
    """Fail when a shipped INT8 precision loses more than `max_drop` dB on ONNX Runtime."""
    for row in table:
        if row["precision"] not in ("int8", "int8_u8s8"):
            continue  # the naive baseline is reported, never shipped
        if row["backend"] != "ort-cpu":
            # Reported, not gated: OpenVINO is optional, and a verdict that depended on what this
            # machine has installed would make the same export pass here and fail there.
            if row["drop_db"] > max_drop:
                log("warning: %s on %s loses %.3f dB against FP32 (more than --max-drop %.3f; the gate "
                    "decides on ONNX Runtime)" % (row["precision"], row["backend"], row["drop_db"], max_drop))
            continue
        if row["drop_db"] > max_drop:
            worst = ""
            if sensitivity:
                top = sorted(sensitivity["per_node_gain_db"].items(), key=lambda kv: -kv[1])[:5]
                worst = "; layers that hurt most when quantized (dB recovered by keeping each in float): " + \
                    ", ".join("%s %.3f" % kv for kv in top)
            raise KdedgeError(
                "%s loses %.3f dB PSNR-Y against FP32 on %s, more than --max-drop %.3f%s"
                % (row["precision"].upper(), row["drop_db"], val_label, max_drop, worst),
                fix="calibrate on images like your footage (--calib DIR), try --calib-method, raise --max-drop, "
                    "or ship FP16 (--fp16 without --int8)",
            )


def report_rows(artifacts: Dict[str, Artifact], folders: Sequence, model, log) -> List[Dict[str, Any]]:
    """Rows of every precision on extra folders (e.g. Set5 and Set14): numbers only, never gated."""
    from kdedge.export.report import ValSet, accuracy_table, format_table

    rows = []  # type: List[Dict[str, Any]]
    for folder in folders:
        extra = ValSet.from_folder(folder, model.scale, model.color)
        extra.label = Path(folder).name
        more = accuracy_table({k: a.model for k, a in artifacts.items()}, extra)
        log(format_table(more, "accuracy on %s:" % extra.label))
        rows.extend(more)
    return rows


# --------------------------------------------------------------------------- manifest


def manifest(model, source_path: Optional[str], opts, stamp_: Stamp, artifacts: Dict[str, Artifact],
             table: List[Dict[str, Any]], parity: Dict[str, Any]):
    """The bundle's `Manifest` (runtime/bundle.py): what the runtime needs, and how every file was made."""
    from kdedge.runtime.bundle import Manifest

    c, m = model.in_channels, max(1, int(model.size_multiple))
    shapes = {k: [1, c, -(-h // m) * m, -(-w // m) * m] for k, (h, w) in DEFAULT_SHAPES_LR.items()}
    return Manifest(
        name=stamp_.name, scale=int(model.scale), color=model.color, size_multiple=m, shapes=shapes,
        precisions={k: a.entry for k, a in artifacts.items() if a.entry is not None},
        default_precision="int8" if opts.int8 else "fp32",
        accuracy={
            "protocol": "MATLAB-bicubic LR, SR rounded to uint8, PSNR on MATLAB Y, shave=%d, gray-as-y" % model.scale,
            "rows": table, "max_drop_db": opts.gate_db if opts.int8 else None,
            "onnx_parity_max_abs": parity["max_abs"], "onnx_parity": parity,
        },
        source={"student": {"arch": model.arch, "model_args": _jsonable(model.model_args),
                            "checkpoint_sha256": stamp_.checkpoint_sha256,
                            "checkpoint": os.path.basename(source_path) if source_path else None},
                "teacher": _jsonable((model.meta or {}).get("teacher"))},
        tools=stamp_.tools,
        export_options={"int8": opts.int8, "fp16": opts.fp16, "u8s8": opts.u8s8, "calib_method": opts.calib_method,
                        "max_drop": opts.gate_db, "mixed_precision": opts.mixed_precision,
                        "val": str(opts.val) if opts.val else None},
        created=stamp_.created,
    )


def write_bundle(folder: Path, manifest_) -> Path:
    """The whole-frame graphs (colour conversion inside the model) of the files written, then
    manifest.json: validated, every file's sha256 filled in, written atomically."""
    from kdedge.export.frame_graph import frame_graph_files

    manifest_.frame_graphs = frame_graph_files(folder, manifest_.to_dict())
    return manifest_.write(folder)


def _jsonable(obj):
    import json

    try:
        json.dumps(obj)
        return obj
    except TypeError:
        return json.loads(json.dumps(obj, default=str))
