"""`export_bundle`: the whole `kdedge export` pipeline as one public call, and the options it takes.

Steps, one function each (steps.py, int8.py; the folder handling in staging.py): load the model ->
FP32 ONNX + parity -> (INT8) calibration ranges by four methods, the method and the float-kept nodes
chosen by measurement, symmetric Q/DQ INT8 (+ U8S8) -> (FP16) -> the accuracy table on validation
images -> the gate (`max_drop`) -> manifest -> atomic rename of the finished folder -> (optionally)
a TensorRT engine. `FORMATS` is the one table of what can be exported: it drives option validation,
the CLI's flags and `--help`, and the bundle's file names.
"""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from kdedge.errors import KdedgeError

# One row per artifact: its bundle file, the ExportOptions field (= CLI flag) that asks for it, what
# that needs, and what it is. Validation, the CLI's flags and help, and file names all read this.
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
DEFAULT_MAX_DROP = 0.2
CALIB_METHODS = ("auto", "minmax", "percentile", "entropy", "mse")


@dataclass
class ExportOptions:
    """What `kdedge export` takes; the defaults are the CLI's (FP32 + FP16; INT8 only when asked)."""

    out: Union[str, Path]
    int8: bool = False
    fp16: bool = True
    u8s8: bool = False
    engine: bool = False
    calib: Optional[Union[str, Path]] = None
    val: Optional[Union[str, Path]] = None
    calib_method: str = "auto"
    max_drop: Optional[float] = None  # dB; None: DEFAULT_MAX_DROP (given explicitly, it needs int8)
    mixed_precision: bool = True
    name: Optional[str] = None
    overwrite: bool = False
    min_calib_images: int = 8
    weights: Optional[str] = None
    report: Sequence[Union[str, Path]] = ()  # extra folders measured into the manifest (not gated)
    log: Callable[[str], None] = field(default=print, repr=False)

    @property
    def gate_db(self) -> float:
        """The INT8 gate: the largest PSNR-Y drop against FP32 (dB) an export may ship."""
        return DEFAULT_MAX_DROP if self.max_drop is None else self.max_drop


def option_default(name: str) -> Any:
    """ExportOptions' default for a field: the CLI's flags take theirs from here."""
    return {f.name: f.default for f in dataclasses.fields(ExportOptions)}[name]


def validate_options(opts: ExportOptions) -> None:
    """Conflicting or meaningless options are errors (never silently fixed)."""
    for name, f in FORMATS.items():
        if f["option"] and f["requires"] and getattr(opts, f["option"]) and not getattr(opts, FORMATS[f["requires"]]["option"]):
            raise KdedgeError("--%s (%s) needs --%s" % (f["option"], name, FORMATS[f["requires"]]["option"]),
                              fix="add --%s" % FORMATS[f["requires"]]["option"])
    if not opts.int8:
        for flag, value, default in (("--calib", opts.calib, None), ("--calib-method", opts.calib_method, "auto"),
                                     ("--max-drop", opts.max_drop, None)):
            if value != default:
                raise KdedgeError("%s only applies to INT8 export" % flag, fix="add --int8, or drop %s" % flag)
    if opts.calib_method not in CALIB_METHODS:
        raise KdedgeError("unknown --calib-method %r" % opts.calib_method, fix="choose one of: %s" % ", ".join(CALIB_METHODS))
    if not (opts.gate_db >= 0):
        raise KdedgeError("--max-drop must be >= 0 dB, got %r" % opts.max_drop)
    if opts.engine:
        try:
            import tensorrt  # noqa: F401
        except ImportError as exc:
            raise KdedgeError("--engine needs TensorRT, which is not importable here (%s)" % exc,
                              fix="build the engine on the Jetson: the runtime builds it at first use from the bundle") from exc


def export_bundle(model_or_path, opts: ExportOptions) -> Dict[str, Any]:
    """Export an SRModel (or a checkpoint path / model spec) to a bundle folder `opts.out`.

    Returns {"out", "manifest" (the `Manifest` written), "table", "parity", "sensitivity", "method_drops"}.
    Raises KdedgeError for bad input and when INT8 loses more than `opts.gate_db` dB (then nothing is
    left at `opts.out`).
    """
    validate_options(opts)
    log = opts.log
    out = Path(opts.out).absolute()
    from kdedge.export import staging
    from kdedge.paths import check_output

    model, source_path = _load(model_or_path, opts.weights)
    check_output(str(out), [source_path, opts.calib, opts.val] + list(opts.report or []), "--out", replaces_folder=True)
    tmp = staging.prepare_out(out, opts.overwrite)
    try:
        result = _export_into(model, source_path, tmp, opts)
        staging.finish(tmp, out)
    except BaseException as exc:
        full = staging.full_disk([tmp.parent, Path(tempfile.gettempdir())]) if isinstance(exc, Exception) else None
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

        prec = result["manifest"].default_precision  # the engine the camera will ask for first
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
    """Every step into the temporary folder `tmp`, in order; the artifacts feed the table and manifest."""
    from kdedge.export import steps
    from kdedge.export.int8 import export_int8

    log, files = opts.log, {k: f["file"] for k, f in FORMATS.items()}
    stamp = steps.stamp(model, source_path, opts.name)
    fp32 = steps.export_fp32(model, tmp, files["fp32"], stamp, log)
    images = steps.images(opts, model)  # before parity: the real-input parity uses validation images
    parity = steps.check_parity(model, fp32, images.val, log)
    artifacts = {"fp32": steps.Artifact({"file": files["fp32"]}, fp32)}
    int8 = export_int8(model, fp32, tmp, files, images, opts, stamp) if opts.int8 else None
    if int8 is not None:
        artifacts.update(int8.artifacts)
    if opts.fp16:
        artifacts["fp16"] = steps.export_fp16(model, fp32, tmp, files["fp16"], stamp, log)
    table = steps.accuracy(artifacts, images.val, model.scale, log)
    if opts.int8:
        steps.gate(table, opts.gate_db, images.val.label, int8.sensitivity, log)
    table += steps.report_rows(artifacts, opts.report, model, log)
    manifest = steps.manifest(model, source_path, opts, stamp, artifacts, table, parity)
    steps.write_bundle(tmp, manifest)
    return {"manifest": manifest, "table": table, "parity": parity,
            "sensitivity": int8.sensitivity if int8 else None, "method_drops": int8.method_drops if int8 else {}}


def next_commands(out) -> List[str]:
    return [
        "kdedge eval --model %s --data ../shared/data/test/Set5 --scale <s>" % out,
        "kdedge bench %s" % out,
        "python -m kdedge.camera --model %s --input v4l2:///dev/video0 --output display://0" % out,
    ]


__all__ = ["CALIB_METHODS", "DEFAULT_MAX_DROP", "ExportOptions", "FORMATS", "export_bundle", "next_commands",
           "validate_options"]
