"""`export_bundle`: the whole `kdedge export` pipeline as one public call; `onnx_model` for evaluation.

Steps (each in its own module): load the model -> FP32 ONNX + parity -> (INT8) calibration ranges
by four methods, the method and the float-kept nodes chosen by measurement, symmetric Q/DQ INT8 ->
(FP16) -> (U8S8) -> the accuracy table on validation images -> the gate (`max_drop`) -> manifest ->
atomic rename of the finished folder -> (optionally) a TensorRT engine. `FORMATS` is the one table
of what can be exported: it drives option validation, `--help` and the bundle's file names.

Calibration and validation images are kept apart: with the shipped `calib_data/` (or `--calib DIR`
without `--val`), every 5th image (sorted by name) is held out for validation and never calibrated
on; the method and exclusion choices are measured on the calibration images, the gate on the
held-out (or `--val`) ones, so the gate is not graded on the data that tuned it.
"""
from __future__ import annotations

import datetime
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from kdedge.errors import KdedgeError

# One row per artifact: its bundle file, the ExportOptions field (= CLI flag) that asks for it, what
# that needs, and what it is. Validation, file names and the formats table all read this.
FORMATS = {
    "fp32": {"file": "model.onnx", "option": None, "requires": None,
             "what": "FP32 ONNX, dynamic H/W (always written; the reference)"},
    "int8": {"file": "model.int8.onnx", "option": "int8", "requires": None,
             "what": "explicit Q/DQ, symmetric INT8 activations, per-channel weights (TensorRT form)"},
    "fp16": {"file": "model.fp16.onnx", "option": "fp16", "requires": None,
             "what": "FP16 weights/activations, float32 I/O"},
    "int8_u8s8": {"file": "model.int8_u8s8.onnx", "option": "u8s8", "requires": "int8",
                  "what": "asymmetric U8S8 Q/DQ for ONNX Runtime CPU"},
    "engine": {"file": "engines/model.<precision>.<device>.trt<version>.engine", "option": "engine", "requires": None,
               "what": "TensorRT engine for this device (needs tensorrt; never portable)"},
}
HOLDOUT_EVERY = 5
DEFAULT_MAX_DROP = 0.2
DEFAULT_SHAPES_LR = {"min": (8, 8), "opt": (270, 480), "max": (1088, 1920)}
CALIB_METHODS = ("auto", "minmax", "percentile", "entropy", "mse")


def formats_table() -> str:
    lines = ["%-10s %-22s %-9s %s" % ("format", "file", "flag", "what")]
    for name, f in FORMATS.items():
        flag = "--" + f["option"] if f["option"] else "-"
        file = f["file"] if len(f["file"]) <= 22 else "engines/*.engine"
        lines.append("%-10s %-22s %-9s %s" % (name, file, flag, f["what"]))
    return "\n".join(lines)


@dataclass
class ExportOptions:
    out: Union[str, Path]
    int8: bool = True
    fp16: bool = True
    u8s8: bool = False
    engine: bool = False
    calib: Optional[Union[str, Path]] = None
    val: Optional[Union[str, Path]] = None
    calib_method: str = "auto"
    max_drop: float = DEFAULT_MAX_DROP
    mixed_precision: bool = True
    name: Optional[str] = None
    overwrite: bool = False
    min_calib_images: int = 8
    weights: Optional[str] = None
    report: Sequence[Union[str, Path]] = ()  # extra folders measured into the manifest (not gated)
    log: Callable[[str], None] = field(default=print, repr=False)


def validate_options(opts: ExportOptions) -> None:
    """Conflicting or meaningless options are errors (never silently fixed)."""
    for name, f in FORMATS.items():
        if f["option"] and f["requires"] and getattr(opts, f["option"]) and not getattr(opts, FORMATS[f["requires"]]["option"]):
            raise KdedgeError("--%s (%s) needs --%s" % (f["option"], name, FORMATS[f["requires"]]["option"]),
                              fix="add --%s" % FORMATS[f["requires"]]["option"])
    if not opts.int8:
        for flag, value, default in (("--calib", opts.calib, None), ("--calib-method", opts.calib_method, "auto")):
            if value != default:
                raise KdedgeError("%s only applies to INT8 export" % flag, fix="add --int8, or drop %s" % flag)
    if opts.calib_method not in CALIB_METHODS:
        raise KdedgeError("unknown --calib-method %r" % opts.calib_method, fix="choose one of: %s" % ", ".join(CALIB_METHODS))
    if not (opts.max_drop >= 0):
        raise KdedgeError("--max-drop must be >= 0 dB, got %r" % opts.max_drop)
    if opts.engine:
        try:
            import tensorrt  # noqa: F401
        except ImportError as exc:
            raise KdedgeError("--engine needs TensorRT, which is not importable here (%s)" % exc,
                              fix="build the engine on the Jetson: the runtime builds it at first use from the bundle") from exc


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


def _prepare_out(out: Path, overwrite: bool) -> Path:
    """Check the destination and create the temporary sibling folder the bundle is written into."""
    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise KdedgeError("output folder %s already exists" % out, fix="choose another --out, or add --overwrite")
    if out.exists() and not out.is_dir():
        raise KdedgeError("output path %s exists and is not a folder" % out)
    parent = out.parent
    if not parent.is_dir():
        raise KdedgeError("the folder %s (parent of --out) does not exist" % parent, fix="create it first, or choose another --out")
    clean_stale(parent, out.name)
    try:
        return Path(tempfile.mkdtemp(prefix=".%s.tmp-%d-" % (out.name, os.getpid()), dir=str(parent)))
    except OSError as exc:
        raise KdedgeError("cannot write into %s (not writable: %s)" % (parent, exc.strerror or exc),
                          fix="choose an --out in a folder you can write to") from exc


WORK_PREFIX = "kdedge-export-"  # scratch folders in the system temp folder: kdedge-export-PID-XXXX
STALE_HOURS = 6.0  # a leftover without a pid in its name (an older kdedge) is stale after this long


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def _stale(path: Path, rest: str) -> bool:
    """`rest` is the name after the prefix: "PID-XXXX" (this kdedge) or "XXXX" (older ones)."""
    head = rest.split("-", 1)[0]
    try:
        age_h = (time.time() - path.lstat().st_mtime) / 3600.0
    except OSError:
        return False
    if head.isdigit() and "-" in rest:
        return not _pid_alive(int(head)) or age_h > 24 * 7  # a live pid this old was reused
    return age_h > STALE_HOURS


def clean_stale(parent: Path, name: str, log: Optional[Callable[[str], None]] = None) -> List[str]:
    """Remove what a killed export left (`kill -9`, power loss): `.NAME.tmp-PID-*` beside --out and
    `kdedge-export-PID-*` in the temp folder whose process is gone (or, without a pid, older than
    STALE_HOURS), and put back a bundle a killed `--overwrite` had moved aside (`.NAME.old-PID`)
    when --out itself is missing. Returns the removed paths. Never touches a live export's files."""
    removed = []  # type: List[str]
    candidates = []
    try:
        candidates += [(p, p.name[len(".%s.tmp-" % name):]) for p in Path(parent).iterdir()
                       if p.name.startswith(".%s.tmp-" % name)]
        olds = [p for p in Path(parent).iterdir() if p.name.startswith(".%s.old-" % name)]
    except OSError:
        olds = []
    try:
        tmpdir = Path(tempfile.gettempdir())
        candidates += [(p, p.name[len(WORK_PREFIX):]) for p in tmpdir.iterdir() if p.name.startswith(WORK_PREFIX)]
    except OSError:
        pass
    out = Path(parent) / name
    for old in olds:
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and _pid_alive(int(pid)):
            continue
        if not out.exists():
            os.replace(str(old), str(out))  # the killed --overwrite had moved the old bundle aside
            (log or print)("restored %s from %s (left by a killed export)" % (out, old))
        else:
            candidates.append((old, "%s-x" % pid))
    for path, rest in candidates:
        if path.is_dir() and not path.is_symlink() and _stale(path, rest):
            shutil.rmtree(str(path), ignore_errors=True)
            removed.append(str(path))
    if removed:
        (log or print)("removed %d leftover(s) of killed exports: %s" % (len(removed), ", ".join(removed)))
    return removed


def _full_disk(paths: Sequence[Path]) -> Optional[str]:
    """The first of `paths` whose filesystem is (nearly) full, else None: an export that fails there
    failed for want of space, whatever the library that hit it said ("Failed to find proper ai.onnx domain")."""
    from kdedge.paths import free_bytes

    for path in paths:
        free = free_bytes(str(path))
        if free is not None and free < 4 * 1024 * 1024:
            return str(path)
    return None


def _finish(tmp: Path, out: Path) -> None:
    """Move the finished bundle into place; an existing one is replaced only after the new one is whole."""
    # mkdtemp/mkstemp create owner-only files; a bundle is meant to be shared and installed, so give
    # it the permissions a plain copy would get under the current umask.
    umask = os.umask(0)
    os.umask(umask)
    for root, dirs, files in os.walk(str(tmp)):
        os.chmod(root, 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~umask)
    old = None
    if out.exists():
        old = out.parent / (".%s.old-%d" % (out.name, os.getpid()))
        os.replace(str(out), str(old))
    os.replace(str(tmp), str(out))
    if old is not None:
        shutil.rmtree(str(old), ignore_errors=True)


def _split(names: Sequence[str]) -> (List[int], List[int]):
    held = [i for i in range(len(names)) if i % HOLDOUT_EVERY == 0]
    return [i for i in range(len(names)) if i % HOLDOUT_EVERY != 0], held


def _sha256(path) -> str:
    from kdedge.runtime.bundle import sha256_file

    return sha256_file(path)


def export_bundle(model_or_path, opts: ExportOptions) -> Dict[str, Any]:
    """Export an SRModel (or a checkpoint path / model spec) to a bundle folder `opts.out`.

    Returns {"out", "manifest", "table", "parity", "sensitivity", "naive"}. Raises KdedgeError for bad
    input and when INT8 loses more than `opts.max_drop` dB (then nothing is left at `opts.out`).
    """
    validate_options(opts)
    log = opts.log
    out = Path(opts.out).absolute()
    from kdedge.paths import check_output

    model, source_path = _load(model_or_path, opts.weights)
    check_output(str(out), [source_path, opts.calib, opts.val] + list(opts.report or []), "--out", replaces_folder=True)
    tmp = _prepare_out(out, opts.overwrite)
    try:
        result = _export_into(model, source_path, tmp, opts)
        _finish(tmp, out)
    except BaseException as exc:
        full = _full_disk([tmp.parent, Path(tempfile.gettempdir())]) if isinstance(exc, Exception) else None
        shutil.rmtree(str(tmp), ignore_errors=True)
        if full is not None and not isinstance(exc, KdedgeError):
            import errno

            from kdedge.errors import from_os_error

            raise from_os_error(OSError(errno.ENOSPC, "No space left on device", full), full,
                                "export to %s failed (%s: %s)" % (out, type(exc).__name__, exc)) from exc
        raise
    result["out"] = str(out)
    log("bundle written: %s" % out)
    if opts.engine:
        from kdedge.runtime.trt_build import build_engine

        prec = result["manifest"]["default_precision"]  # the engine the camera will ask for first
        t0 = time.time()
        path = build_engine(out, prec, log=log)
        result["engine"] = str(path)
        log("engine %s: %s (%.1f s)" % (prec, path, time.time() - t0))
    return result


def _load(model_or_path, weights: Optional[str]):
    if not isinstance(model_or_path, (str, Path)):
        return model_or_path, None
    from kdedge.models.loading import load_model

    spec = str(model_or_path)
    return load_model(spec, weights=weights), (weights or spec)


def _export_into(model, source_path, tmp: Path, opts: ExportOptions) -> Dict[str, Any]:
    from kdedge.export import calibrate as cal
    from kdedge.export import quantize as qz
    from kdedge.export.fp16 import convert_fp16
    from kdedge.evaluate import BackendUpscaler
    from kdedge.export.onnx_export import check_parity, export_onnx, open_onnx, save_model, set_metadata
    from kdedge.export.report import ValSet, accuracy_table, format_table

    log = opts.log
    name = opts.name or "kdedge-%s-x%d" % (model.arch.replace("spandrel:", ""), model.scale)
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    tools = _tool_versions()
    checkpoint_sha = _sha256(source_path) if source_path and os.path.isfile(source_path) else None
    meta = {"kdedge_name": name, "kdedge_arch": model.arch, "kdedge_scale": str(model.scale),
            "kdedge_color": model.color, "kdedge_version": tools["kdedge"], "kdedge_created": created,
            "kdedge_source_sha256": checkpoint_sha or ""}

    t0 = time.time()
    fp32 = export_onnx(model, tmp / FORMATS["fp32"]["file"], metadata=dict(meta, kdedge_precision="fp32"))
    _logged(log, "fp32", fp32, t0)

    # Calibration / validation images (loaded before parity: the real-input parity uses them).
    calib_inputs, calib_sens, val = None, None, None
    calib_inputs, calib_sens, val, calib_label = _images(opts, model)

    real = [it.x for it in (val.items[:2] if val else [])]
    parity = check_parity(model, fp32, real_inputs=real)
    log("parity torch vs ONNX Runtime: max abs %.2e (random %.2e, real %s)"
        % (parity["max_abs"], parity["random_max_abs"],
           "-" if parity["real_max_abs"] is None else "%.2e" % parity["real_max_abs"]))
    if not parity["max_abs"] <= 1e-4:
        raise KdedgeError("ONNX export of %s differs from torch by %.3g (> 1e-4)" % (model.arch, parity["max_abs"]),
                          fix="an op is exported wrongly; report it with the checkpoint")

    precisions: Dict[str, Dict[str, Any]] = {"fp32": {"file": FORMATS["fp32"]["file"]}}
    models_for_table: Dict[str, Any] = {"fp32": fp32}
    sens_dict, method_drops, chosen = None, {}, None
    if opts.int8:
        t0 = t_int8 = time.time()
        # The sensitivity pass scores dozens of candidate graphs: on the runtime's ONNX Runtime backend,
        # the engine the gate decides on (OpenVINO compiles per input shape, slow for one-off graphs).
        with open_onnx(fp32) as be:
            estimate = calib_sens.drop_estimator(BackendUpscaler(be, model.scale, model.color, "fp32"))

        def drop_of(proto) -> float:
            with open_onnx(proto) as be:
                return estimate(BackendUpscaler(be, model.scale, model.color, "candidate"))

        import onnx

        from kdedge.export.rewrite import split_identity

        # Candidate graphs for INT8: the exported one, and (when it has fused identities) the exact
        # identity-split rewrite; each gets its own calibration, method choice and sensitivity pass,
        # and the lower estimated drop wins.
        work = tempfile.TemporaryDirectory(prefix="%s%d-" % (WORK_PREFIX, os.getpid()))  # pid: see clean_stale
        graphs = {"plain": fp32}
        qat = (model.meta or {}).get("qat")
        split_proto, split_nodes = split_identity(onnx.load(str(fp32)))
        if split_nodes and not qat:  # a QAT student was trained for the plain graph
            graphs["identity-split"] = save_model(split_proto, Path(work.name) / "split.onnx")
        plans = {g: (_plan_qat(path, qat, calib_inputs, drop_of, log) if qat else
                     _plan_int8(path, calib_inputs, drop_of, opts, log, g)) for g, path in graphs.items()}
        graph = min(plans, key=lambda g: plans[g]["final_drop"])
        plan = plans[graph]
        if len(plans) > 1:
            log("INT8 graph: %s (estimated drop %s)" % (graph, {g: round(p["final_drop"], 4) for g, p in plans.items()}))
        source, stats, chosen, method_drops = graphs[graph], plan["stats"], plan["method"], plan["method_drops"]
        ranges, excluded, sens_dict = plan["ranges"], plan["excluded"], plan["sensitivity"]
        int8 = qz.quantize_qdq(source, ranges, excluded=excluded)
        form = qz.check_qdq_form(int8)
        set_metadata(int8, dict(meta, kdedge_precision="int8", kdedge_calibration=chosen,
                                kdedge_excluded_nodes=",".join(excluded)))
        _logged(log, "int8", save_model(int8, tmp / FORMATS["int8"]["file"]), t_int8)
        precisions["int8"] = {"file": FORMATS["int8"]["file"], "quantization": {
            "activations": "int8-symmetric", "weights": "int8-per-channel-symmetric",
            "calibration": ("learned (kdedge qat, %d steps)" % qat["config"]["steps"]) if qat else
                           chosen if chosen != "percentile" else "percentile-%g" % cal.DEFAULT_PERCENTILE,
            "calibration_images": len(calib_inputs), "calibration_folder": calib_label,
            "method_estimated_drop_db_on_calibration_set": method_drops,
            "excluded_nodes": excluded, "qdq_counts": form,
            "graph": graph, "identity_split_convs": split_nodes if graph == "identity-split" else [],
            "graph_estimated_drop_db": {g: round(p["final_drop"], 4) for g, p in plans.items()},
            "sensitivity": sens_dict,
        }}
        if qat:  # provenance of the learned ranges: where the fine-tune started and its recipe
            precisions["int8"]["quantization"]["qat"] = {k: qat.get(k) for k in ("source", "config", "val_psnr_fp32_start", "form")}
        models_for_table["int8"] = int8
        naive = qz.quantize_qdq(fp32, cal.ranges(plans["plain"]["stats"], "minmax"))
        models_for_table["int8_naive_minmax"] = naive
        if qat:  # post-training quantization of the same network and float nodes: reported beside QAT
            models_for_table["int8_ptq"] = qz.quantize_qdq(fp32, cal.ranges(stats, cal.DEFAULT_METHOD), excluded=excluded)
        if opts.u8s8:
            u8_ranges = plan["u8s8_ranges"] if qat else cal.ranges(stats, chosen, symmetric=False)
            u8 = qz.quantize_qdq(source, u8_ranges, excluded=excluded, u8s8=True)
            set_metadata(u8, dict(meta, kdedge_precision="int8_u8s8"))
            _logged(log, "int8_u8s8", save_model(u8, tmp / FORMATS["int8_u8s8"]["file"]), t_int8)
            precisions["int8_u8s8"] = {"file": FORMATS["int8_u8s8"]["file"], "quantization": {
                "activations": "uint8-asymmetric", "weights": "int8-per-channel-symmetric",
                "calibration": chosen, "excluded_nodes": excluded}}
            models_for_table["int8_u8s8"] = u8
        work.cleanup()  # the split graph was only a source for the INT8 files
    if opts.fp16:
        import onnx

        t0 = time.time()
        half = convert_fp16(onnx.load(str(fp32)))
        set_metadata(half, dict(meta, kdedge_precision="fp16"))
        _logged(log, "fp16", save_model(half, tmp / FORMATS["fp16"]["file"]), t0)
        precisions["fp16"] = {"file": FORMATS["fp16"]["file"], "converter": half.doc_string}
        models_for_table["fp16"] = tmp / FORMATS["fp16"]["file"]

    table = []
    if val is not None:
        table = accuracy_table(models_for_table, val)
        log(format_table(table, "accuracy (standard protocol, Y, shave=%d):" % model.scale))
        for row in table if opts.int8 else []:
            if row["precision"] not in ("int8", "int8_u8s8"):
                continue  # the naive baseline is reported, never shipped
            if row["backend"] != "ort-cpu":
                # Reported, not gated: OpenVINO is optional, and a verdict that depended on what this
                # machine has installed would make the same export pass here and fail there.
                if row["drop_db"] > opts.max_drop:
                    log("warning: %s on %s loses %.3f dB against FP32 (more than --max-drop %.3f; the gate "
                        "decides on ONNX Runtime)" % (row["precision"], row["backend"], row["drop_db"], opts.max_drop))
                continue
            if row["drop_db"] > opts.max_drop:
                sens_text = ""
                if sens_dict:
                    worst = sorted(sens_dict["per_node_gain_db"].items(), key=lambda kv: -kv[1])[:5]
                    sens_text = "; layers that hurt most when quantized (dB recovered by keeping each in float): " + \
                        ", ".join("%s %.3f" % kv for kv in worst)
                raise KdedgeError(
                    "%s loses %.3f dB PSNR-Y against FP32 on %s, more than --max-drop %.3f%s"
                    % (row["precision"].upper(), row["drop_db"], val.label, opts.max_drop, sens_text),
                    fix="calibrate on images like your footage (--calib DIR), try --calib-method, raise --max-drop, "
                        "or ship FP16 (--fp16 without --int8)",
                )

    for folder in opts.report:  # e.g. Set5 and Set14: numbers only, the images stay where they are
        extra = ValSet.from_folder(folder, model.scale, model.color)
        extra.label = Path(folder).name
        rows = accuracy_table(models_for_table, extra)
        log(format_table(rows, "accuracy on %s:" % extra.label))
        table.extend(rows)

    c = model.in_channels
    shapes = {k: [1, c, h, w] for k, (h, w) in DEFAULT_SHAPES_LR.items()}
    m = max(1, int(model.size_multiple))
    shapes = {k: [v[0], v[1], -(-v[2] // m) * m, -(-v[3] // m) * m] for k, v in shapes.items()}
    manifest = {
        "format": "kdedge-bundle",
        "format_version": 1,
        "name": name,
        "scale": int(model.scale),
        "color": model.color,
        "value_range": [0.0, 1.0],
        "layout": "NCHW",
        "input": {"name": "lr", "channels": c, "dtype": "float32"},
        "output": {"name": "sr", "channels": c, "dtype": "float32"},
        "size_multiple": m,
        "shapes": shapes,
        "precisions": precisions,
        "default_precision": "int8" if opts.int8 else "fp32",
        "accuracy": {
            "protocol": "MATLAB-bicubic LR, SR rounded to uint8, PSNR on MATLAB Y, shave=%d, gray-as-y" % model.scale,
            "rows": table,
            "max_drop_db": opts.max_drop if opts.int8 else None,
            "onnx_parity_max_abs": parity["max_abs"],
            "onnx_parity": parity,
        },
        "source": {"student": {"arch": model.arch, "model_args": _jsonable(model.model_args),
                               "checkpoint_sha256": checkpoint_sha,
                               "checkpoint": os.path.basename(source_path) if source_path else None},
                   "teacher": _jsonable((model.meta or {}).get("teacher"))},
        "tools": tools,
        "export_options": {"int8": opts.int8, "fp16": opts.fp16, "u8s8": opts.u8s8, "calib_method": opts.calib_method,
                           "max_drop": opts.max_drop, "mixed_precision": opts.mixed_precision,
                           "val": str(opts.val) if opts.val else None},
        "created": created,
    }
    from kdedge.export.bundle_writer import write_bundle_manifest

    write_bundle_manifest(tmp, manifest)
    return {"manifest": manifest, "table": table, "parity": parity, "sensitivity": sens_dict,
            "method_drops": method_drops}


def _plan_int8(path, calib_inputs, drop_of, opts: ExportOptions, log, label: str) -> Dict[str, Any]:
    """Calibrate `path`, choose the range method and the float nodes by measurement (see quantize.py)."""
    from kdedge.export import calibrate as cal
    from kdedge.export import quantize as qz

    t0 = time.time()
    stats = cal.collect_statistics(path, calib_inputs)
    methods = list(cal.METHODS) if opts.calib_method == "auto" else [opts.calib_method]
    all_ranges = {m: cal.ranges(stats, m) for m in methods}
    method_drops = {m: round(drop_of(qz.quantize_qdq(path, all_ranges[m])), 4) for m in methods}
    chosen = min(methods, key=lambda m: method_drops[m])
    log("[%s] calibration on %d images: all-INT8 estimated drop by method %s -> %s (%.1f s)"
        % (label, len(calib_inputs), method_drops, chosen, time.time() - t0))
    plan = {"stats": stats, "method": chosen, "method_drops": method_drops, "ranges": all_ranges[chosen],
            "excluded": [], "sensitivity": None, "final_drop": method_drops[chosen]}
    if opts.mixed_precision:
        t0 = time.time()
        # Target well under the gate: the float nodes it picks are the thin ends of the net and the
        # element-wise adds (default student: residual Add + Concat, first and last conv, the split
        # identity Adds: 9% of its MACs; the two wide body convs stay INT8).
        sens = qz.sensitivity(path, plan["ranges"], drop_of, target_drop=min(0.02, opts.max_drop / 4))
        plan.update(excluded=sens.excluded, sensitivity=sens.to_dict(), final_drop=sens.final_drop)
        log("[%s] sensitivity: all-INT8 estimated drop %.3f dB; kept in float: %s -> %.3f dB (%.1f s)"
            % (label, sens.all_quantized_drop, sens.excluded or "none", sens.final_drop, time.time() - t0))
    return plan


def _plan_qat(path, qat: Dict[str, Any], calib_inputs, drop_of, log) -> Dict[str, Any]:
    """The INT8 plan of a QAT checkpoint (`kdedge qat`): its learned ranges and the float nodes it was trained with.

    Calibration still runs, for the tensors QAT does not quantize and for the PTQ row the gate
    reports beside QAT. U8S8 gets the same ranges, non-negative tensors as [0, amax] (twice the
    resolution of the symmetric grid QAT trained on, which only removes rounding noise).
    """
    from kdedge.export import calibrate as cal
    from kdedge.export import quantize as qz

    learned = {k: float(v) for k, v in (qat.get("activation_amax") or {}).items()}
    stats = cal.collect_statistics(path, calib_inputs)
    unknown = sorted(set(learned) - set(stats))
    if not learned or unknown:
        raise KdedgeError("the QAT ranges of this checkpoint do not match its exported graph (%s)"
                          % (", ".join(unknown[:3]) or "no ranges"),
                          fix="re-run `kdedge qat` with this kdedge version, or export the checkpoint it started from")
    import onnx

    nodes = {n.name for n in onnx.load(str(path)).graph.node}
    excluded = list(qat.get("float_nodes") or [])
    if set(excluded) - nodes:
        raise KdedgeError("the QAT float nodes %s are not in the exported graph" % sorted(set(excluded) - nodes),
                          fix="re-run `kdedge qat` with this kdedge version")
    ranges = dict(cal.ranges(stats, cal.DEFAULT_METHOD), **{k: (-a, a) for k, a in learned.items()})
    u8s8 = dict(cal.ranges(stats, cal.DEFAULT_METHOD, symmetric=False),
                **{k: ((0.0 if stats[k].low >= 0 else -a), a) for k, a in learned.items()})
    drop = round(drop_of(qz.quantize_qdq(path, ranges, excluded=excluded)), 4)
    log("[qat] learned ranges for %d tensors, float: %s; estimated drop %.4f dB on the calibration images"
        % (len(learned), ", ".join(excluded) or "none", drop))
    return {"stats": stats, "method": "qat", "method_drops": {"qat": drop}, "ranges": ranges, "u8s8_ranges": u8s8,
            "excluded": excluded, "sensitivity": None, "final_drop": drop}


def _images(opts: ExportOptions, model):
    """(calibration inputs, calibration ValSet, validation ValSet, calibration label) for this export.

    INT8: calibration from --calib (default calib_data/), validation from --val or the held-out fifth.
    No INT8: no calibration; validation from --val, else all of calib_data/ (nothing was tuned on it).
    """
    from kdedge.export import calibrate as cal
    from kdedge.export.report import ValSet

    calib_dir = Path(opts.calib) if opts.calib else cal.default_calib_dir()
    calib_label = str(opts.calib) if opts.calib else "calib_data/"  # no machine paths in a shipped manifest
    if not opts.int8:
        if opts.val:
            return None, None, ValSet.from_folder(opts.val, model.scale, model.color), calib_label
        val = ValSet.from_folder(calib_dir, model.scale, model.color)
        val.label = calib_label
        return None, None, val, calib_label
    paths = cal.list_images(calib_dir)
    images = cal.read_images(paths)
    names = [p.name for p in paths]
    if opts.val:
        calib_idx = list(range(len(paths)))
        val = ValSet.from_folder(opts.val, model.scale, model.color)
    else:
        calib_idx, held_idx = _split(names)
        val = ValSet([images[i] for i in held_idx], [paths[i].stem for i in held_idx], model.scale, model.color,
                     label="%s (held out: every %dth image)" % (calib_label, HOLDOUT_EVERY))
    small = [names[i] for i in calib_idx if min(images[i].shape[:2]) < 8 * model.scale]
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
    calib_images = [images[i] for i in calib_idx]
    calib_inputs = cal.lr_inputs(calib_images, model.scale, model.color)
    calib_sens = ValSet(calib_images, [paths[i].stem for i in calib_idx], model.scale, model.color, calib_label)
    if len(val) == 0:
        raise KdedgeError("no validation images", fix="pass --val DIR")
    return calib_inputs, calib_sens, val, calib_label


def _logged(log, name: str, path: Path, t0: float) -> None:
    """One line per artifact, as ultralytics' try_export does: format, file, time, size."""
    log("%-9s %-22s %6.1f s %7.1f KB" % (name, Path(path).name, time.time() - t0, Path(path).stat().st_size / 1024.0))


def _jsonable(obj):
    import json

    try:
        json.dumps(obj)
        return obj
    except TypeError:
        return json.loads(json.dumps(obj, default=str))


def next_commands(out) -> List[str]:
    return [
        "kdedge eval --model %s --data ../shared/data/test/Set5 --scale <s>" % out,
        "kdedge bench %s" % out,
        "python -m kdedge.camera --model %s --input v4l2:///dev/video0 --output display://0" % out,
    ]


def onnx_model(path_or_bundle, precision: Optional[str] = None, threads: Optional[int] = None,
               backend: str = "ort-cpu") -> Callable[[np.ndarray], np.ndarray]:
    """An ONNX file or a bundle (one precision; default: the bundle's default) -> `f(x) -> y`.

    `x`: float32 N x C x H x W in [0, 1]; `y`: N x C x sH x sW float32. The model runs on a runtime
    CPU backend (`backend`: ort-cpu or openvino) through `kdedge.evaluate`'s upscalers, the path
    `kdedge eval` takes. The callable carries `.scale` and `.color` (for a bare file: scale None,
    colour from its input channels) and `.close()`.
    """
    from kdedge.evaluate import bundle_upscaler, onnx_upscaler

    path = Path(path_or_bundle)
    if path.is_file() or path.suffix.lower() == ".onnx":
        return onnx_upscaler(path, backend=backend, precision=None if precision == "auto" else precision, threads=threads)
    return bundle_upscaler(path_or_bundle, None if precision == "auto" else precision, backend, threads)


__all__ = ["ExportOptions", "FORMATS", "export_bundle", "formats_table", "next_commands", "onnx_model"]
