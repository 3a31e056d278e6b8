"""The bundle format: one folder with manifest.json and ONNX files, the only thing export hands the runtime.

This module is the single definition of the schema (see BUNDLE.md in the notes and DESIGN.md):
`Manifest` is manifest.json as a type: `kdedge export` builds one and calls `Manifest.write(folder)`,
`load_bundle(path)` reads one with `Manifest.from_dict`. Both go through one validator, so a bundle
that export can write is a bundle the runtime can read. `ModelSpec` is the part that running the
network needs. Checksums are verified lazily, when a precision is opened, because hashing every
variant at start-up would slow a camera launch for files it never reads.

Stdlib only: this is imported by the Jetson runtime on Python 3.8.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Union

from kdedge.common import FILE_PRECISIONS, atomic_write_bytes, sha256_file
from kdedge.errors import KdedgeError

FORMAT = "kdedge-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ENGINES_DIR = "engines"
COLORS = ("y", "rgb")
PRECISIONS = FILE_PRECISIONS
# The whole-frame graphs' tensors (export/frame_graph.py): (1, H, W, 3) uint8 BGR in, (1, sH, sW, 3) out.
FRAME_INPUT = "frame"
FRAME_OUTPUT = "frame_sr"
_CHANNELS = {"y": 1, "rgb": 3}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REQUIRED = (
    "format", "format_version", "name", "scale", "color", "value_range", "layout",
    "input", "output", "shapes", "precisions", "default_precision",
)


def _fail(where: str, field: str, problem: str, fix: Optional[str] = None) -> KdedgeError:
    return KdedgeError("%s: field %r %s" % (where, field, problem), fix=fix)


def _check_int_list(value: Any, n: int, where: str, field: str) -> List[int]:
    if not isinstance(value, list) or len(value) != n or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        raise _fail(where, field, "must be a list of %d positive integers, got %r" % (n, value))
    return value


def _check_file_entry(entry: Any, where: str, field: str) -> None:
    """A {file, sha256} entry: a relative name inside the bundle and a hex digest."""
    if not isinstance(entry, dict):
        raise _fail(where, field, "must be an object with 'file' and 'sha256'")
    name = entry.get("file")
    if not isinstance(name, str) or not name or os.path.isabs(name) or ".." in Path(name).parts:
        raise _fail(where, field + ".file", "must be a relative file name inside the bundle, got %r" % (name,))
    if not isinstance(entry.get("sha256"), str) or not _SHA256.match(entry["sha256"]):
        raise _fail(where, field + ".sha256", "must be 64 lower-case hex digits, got %r" % (entry.get("sha256"),))


def validate_manifest(manifest: Dict[str, Any], where: str = MANIFEST) -> Dict[str, Any]:
    """Check a manifest dict against format_version 1; raise KdedgeError naming `where` and the field.

    Returns the manifest unchanged. Unknown extra keys are allowed (a newer minor writer may add
    information); a different `format_version` is refused because its meaning is unknown.
    """
    if not isinstance(manifest, dict):
        raise KdedgeError("%s: must hold a JSON object, got %s" % (where, type(manifest).__name__))
    if manifest.get("format") != FORMAT:
        raise _fail(where, "format", "must be %r, got %r" % (FORMAT, manifest.get("format")),
                    fix="this folder is not a kdedge bundle; make one with `kdedge export CHECKPOINT --out DIR`")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise _fail(where, "format_version", "is %r; this kdedge reads version %d only" % (version, FORMAT_VERSION),
                    fix="use the kdedge version that wrote this bundle, or re-export it with this one")
    for key in _REQUIRED:
        if key not in manifest:
            raise _fail(where, key, "is missing", fix="re-export the bundle with `kdedge export`")
    if not isinstance(manifest["name"], str) or not manifest["name"]:
        raise _fail(where, "name", "must be a non-empty string")
    scale = manifest["scale"]
    if not isinstance(scale, int) or isinstance(scale, bool) or not 1 <= scale <= 8:
        raise _fail(where, "scale", "must be an integer 1..8, got %r" % (scale,))
    color = manifest["color"]
    if color not in COLORS:
        raise _fail(where, "color", "must be one of %s, got %r" % (list(COLORS), color))
    vr = manifest["value_range"]
    if not (isinstance(vr, list) and len(vr) == 2 and all(isinstance(v, (int, float)) for v in vr) and vr[0] < vr[1]):
        raise _fail(where, "value_range", "must be [low, high] with low < high, got %r" % (vr,))
    if manifest["layout"] != "NCHW":
        raise _fail(where, "layout", "must be 'NCHW', got %r" % (manifest["layout"],))
    for key in ("input", "output"):
        tensor = manifest[key]
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str) or not tensor.get("name"):
            raise _fail(where, key, "must be an object with a non-empty 'name'")
        if tensor.get("channels") != _CHANNELS[color]:
            raise _fail(where, key + ".channels", "must be %d for color %r, got %r" % (_CHANNELS[color], color, tensor.get("channels")))
        if tensor.get("dtype", "float32") != "float32":
            raise _fail(where, key + ".dtype", "must be 'float32' (quantized models keep float I/O), got %r" % (tensor.get("dtype"),))
    multiple = manifest.get("size_multiple", 1)
    if not isinstance(multiple, int) or isinstance(multiple, bool) or multiple < 1:
        raise _fail(where, "size_multiple", "must be a positive integer, got %r" % (multiple,))
    shapes = manifest["shapes"]
    if not isinstance(shapes, dict):
        raise _fail(where, "shapes", "must be an object with min, opt and max")
    for key in ("min", "opt", "max"):
        _check_int_list(shapes.get(key), 4, where, "shapes." + key)
    for i in range(4):
        if not shapes["min"][i] <= shapes["opt"][i] <= shapes["max"][i]:
            raise _fail(where, "shapes", "needs min <= opt <= max in every dimension, got %r" % (shapes,))
    precisions = manifest["precisions"]
    if not isinstance(precisions, dict) or not precisions:
        raise _fail(where, "precisions", "must be a non-empty object of precision -> {file, sha256}")
    for prec, entry in precisions.items():
        field = "precisions." + str(prec)
        if prec not in PRECISIONS:
            raise _fail(where, field, "is not a known precision; known: %s" % ", ".join(PRECISIONS))
        _check_file_entry(entry, where, field)
    frames = manifest.get("frame_graphs", {})
    if not isinstance(frames, dict):
        raise _fail(where, "frame_graphs", "must be an object of precision -> {file, sha256}")
    for prec, entry in frames.items():
        field = "frame_graphs." + str(prec)
        if prec not in precisions:
            raise _fail(where, field, "has no model of that precision in 'precisions'")
        if manifest["color"] != "y":
            raise _fail(where, field, "whole-frame graphs exist for Y students only")
        _check_file_entry(entry, where, field)
    if manifest["default_precision"] not in precisions:
        raise _fail(where, "default_precision", "is %r but precisions has only %s" % (manifest["default_precision"], sorted(precisions)))
    return manifest


class ModelSpec(NamedTuple):
    """What running the network takes: scale, colour space (model input Y or RGB), tensor names and
    the size multiple inputs are padded to. A bundle has one (`Bundle.spec`); a bare ONNX file is
    described by building one (`ModelSpec(scale=2, color="y")`)."""

    scale: int
    color: str
    input_name: str = "lr"
    output_name: str = "sr"
    size_multiple: int = 1

    @property
    def channels(self) -> int:
        return _CHANNELS[self.color]


# manifest.json keys in the order they are written; the optional ones are left out when None.
_OPTIONAL = ("accuracy", "source", "tools", "export_options", "created", "frame_graphs")


@dataclass
class Manifest:
    """manifest.json (format_version 1) as a type: `to_dict()` is the JSON written, `from_dict()`
    validates and reads one. `layout` is always NCHW and the I/O dtype float32 (the validator
    refuses anything else); keys this version does not know are kept in `extra` and written back."""

    name: str
    scale: int
    color: str  # "y" (the model sees Y/255, chroma is upscaled bicubically) or "rgb"
    shapes: Dict[str, List[int]]  # min / opt / max NCHW input shapes (TensorRT optimisation profile)
    precisions: Dict[str, Dict[str, Any]]  # precision -> {file, sha256, ...what made it}
    default_precision: str
    input_name: str = "lr"
    output_name: str = "sr"
    size_multiple: int = 1
    value_range: List[float] = field(default_factory=lambda: [0.0, 1.0])
    accuracy: Optional[Dict[str, Any]] = None  # the export's PSNR table, gate and parity
    source: Optional[Dict[str, Any]] = None  # student / teacher provenance
    tools: Optional[Dict[str, str]] = None  # versions that wrote the files
    export_options: Optional[Dict[str, Any]] = None
    created: Optional[str] = None  # UTC, ISO 8601
    # precision -> {file, sha256} of the whole-frame graph (BGR uint8 in and out, export/frame_graph.py)
    frame_graphs: Optional[Dict[str, Dict[str, Any]]] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.scale, self.color, self.input_name, self.output_name, self.size_multiple)

    def to_dict(self) -> Dict[str, Any]:
        """The JSON object, keys in the order every kdedge has written them (a deep copy)."""
        c = _CHANNELS.get(self.color)
        out = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "name": self.name, "scale": self.scale,
            "color": self.color, "value_range": list(self.value_range), "layout": "NCHW",
            "input": {"name": self.input_name, "channels": c, "dtype": "float32"},
            "output": {"name": self.output_name, "channels": c, "dtype": "float32"},
            "size_multiple": self.size_multiple, "shapes": self.shapes, "precisions": self.precisions,
            "default_precision": self.default_precision,
        }  # type: Dict[str, Any]
        out.update((k, getattr(self, k)) for k in _OPTIONAL if getattr(self, k) is not None)
        out.update(self.extra)
        return json.loads(json.dumps(out))  # deep copy, and proves it is JSON-serialisable

    @classmethod
    def from_dict(cls, manifest: Dict[str, Any], where: str = MANIFEST) -> "Manifest":
        """Validate (KdedgeError naming `where` and the field) and read a manifest.json object."""
        m = validate_manifest(manifest, where)
        return cls(m["name"], int(m["scale"]), m["color"], m["shapes"], m["precisions"], m["default_precision"],
                   m["input"]["name"], m["output"]["name"], int(m.get("size_multiple", 1)), m["value_range"],
                   extra={k: v for k, v in m.items() if k not in _REQUIRED + _OPTIONAL + ("size_multiple",)},
                   **{k: m.get(k) for k in _OPTIONAL})

    def write(self, folder) -> Path:
        """Hash every file it names, validate, write folder/manifest.json atomically; the sha256 of
        each entry is filled in here too. Returns the manifest path."""
        data = self.to_dict()
        path = _write(Path(folder), data)
        self.precisions, self.frame_graphs = data["precisions"], data.get("frame_graphs")
        return path


class Bundle:
    """A validated bundle folder: its `Manifest`, whose fields it mirrors; files are checked when opened.

    `model_path(precision)` returns the ONNX file of one precision after verifying its sha256 (once
    per process); `engine_path(precision, device_slug, trt_version)` names the cached TensorRT engine.
    """

    def __init__(self, path: Path, manifest: Manifest):
        self.path = Path(path)
        self.manifest = manifest
        self.spec = manifest.spec  # type: ModelSpec
        self.name = manifest.name  # type: str
        self.scale = manifest.scale
        self.color = manifest.color  # type: str
        self.channels = self.spec.channels
        self.input_name = manifest.input_name  # type: str
        self.output_name = manifest.output_name  # type: str
        self.size_multiple = manifest.size_multiple
        self.shapes = manifest.shapes  # type: Dict[str, List[int]]
        self.precisions = manifest.precisions  # type: Dict[str, Dict[str, Any]]
        self.default_precision = manifest.default_precision  # type: str
        self.frame_graphs = manifest.frame_graphs or {}  # type: Dict[str, Dict[str, Any]]
        self._verified = set()  # type: set

    def __repr__(self) -> str:
        return "Bundle(%r, x%d, %s, precisions=%s)" % (str(self.path), self.scale, self.color, sorted(self.precisions))

    def resolve_precision(self, precision: Optional[str]) -> str:
        """'auto'/None -> the manifest's default; anything else must be listed in the manifest."""
        if precision in (None, "", "auto"):
            return self.default_precision
        if precision not in self.precisions:
            raise KdedgeError(
                "bundle %s has no %r precision" % (self.path, precision),
                fix="choose one of: %s (or re-export with it)" % ", ".join(sorted(self.precisions)),
            )
        return precision

    def model_path(self, precision: Optional[str] = None, verify: bool = True) -> Path:
        """Path of the ONNX file for `precision`, its sha256 checked against the manifest."""
        precision = self.resolve_precision(precision)
        return self._checked(self.precisions[precision], precision, verify)

    def frame_model_path(self, precision: str, verify: bool = True) -> Path:
        """Path of the whole-frame graph (BGR uint8 frame in, BGR uint8 SR frame out) for `precision`."""
        precision = self.resolve_precision(precision)
        if precision not in self.frame_graphs:
            raise KdedgeError("bundle %s has no whole-frame graph for %s (it has: %s)"
                              % (self.path, precision, ", ".join(sorted(self.frame_graphs)) or "none"),
                              fix="use --frame-graph off, or add them: python scripts/add_frame_graphs.py BUNDLE")
        return self._checked(self.frame_graphs[precision], "frame " + precision, verify)

    def _checked(self, entry: Dict[str, Any], what: str, verify: bool) -> Path:
        path = self.path / entry["file"]
        if not path.is_file():
            raise KdedgeError(
                "bundle %s: %s (%s) is missing" % (self.path, entry["file"], what),
                fix="copy the whole bundle folder, or re-export it",
            )
        if verify and what not in self._verified:
            digest = sha256_file(path)
            if digest != entry["sha256"]:
                raise KdedgeError(
                    "bundle %s: %s has sha256 %s but manifest.json says %s (corrupt or modified file)"
                    % (self.path, entry["file"], digest, entry["sha256"]),
                    fix="copy the bundle again, or re-export it; never edit files inside a bundle",
                )
            self._verified.add(what)
        return path

    @property
    def engines_dir(self) -> Path:
        return self.path / ENGINES_DIR

    def engine_path(self, precision: str, device_slug: str, trt_version: str) -> Path:
        """Where the engine built for this device and TensorRT version is cached (never portable)."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", device_slug).strip("-").lower() or "device"
        return self.engines_dir / ("model.%s.%s.trt%s.engine" % (precision, safe, trt_version))


def shipped_bundles() -> Dict[str, Path]:
    """Bundles installed with the package (kdedge/assets/<folder>/), by folder name ("default_x2") and,
    for x2 bundles, by short name ("default", "fast")."""
    import kdedge

    assets = Path(kdedge.__file__).resolve().parent / "assets"
    found = {}
    for folder in sorted(assets.iterdir()) if assets.is_dir() else ():
        if folder.is_dir() and (folder / MANIFEST).is_file():
            found[folder.name] = folder
            if folder.name.endswith("_x2"):
                found.setdefault(folder.name[:-3], folder)
    return found


def load_bundle(path) -> Bundle:
    """Read and validate `path/manifest.json` (a folder, or the manifest file itself). A bare name
    that is not a folder here ("default", "fast") means a bundle shipped with the package."""
    shipped = shipped_bundles() if not Path(path).exists() and "/" not in str(path) else {}
    path = shipped.get(str(path), Path(path))
    if path.name == MANIFEST and path.is_file():
        path = path.parent
    manifest_path = path / MANIFEST
    if not path.exists():
        names = ", ".join(sorted(shipped_bundles())) or "none installed"
        raise KdedgeError("bundle %s does not exist" % path,
                          fix="pass the folder written by `kdedge export --out DIR`, or a shipped bundle's name (%s)" % names)
    if not manifest_path.is_file():
        raise KdedgeError("%s is not a bundle: no %s inside" % (path, MANIFEST),
                          fix="pass the folder written by `kdedge export --out DIR`")
    try:
        with open(str(manifest_path), "r", encoding="utf-8") as f:
            manifest = json.load(f)
    except ValueError as exc:
        raise KdedgeError("%s is not valid JSON: %s" % (manifest_path, exc), fix="re-export the bundle") from exc
    return Bundle(path, Manifest.from_dict(manifest, str(manifest_path)))


def write_manifest(folder, manifest: Union[Manifest, Dict[str, Any]]) -> Path:
    """Validate `manifest` (a Manifest or its JSON object) against the files in `folder`, write
    folder/manifest.json atomically; a missing sha256 is computed, a given one must match. Returns
    the manifest path; the argument is not modified."""
    data = manifest.to_dict() if isinstance(manifest, Manifest) else json.loads(json.dumps(manifest))  # a copy
    data.setdefault("format", FORMAT)
    data.setdefault("format_version", FORMAT_VERSION)
    return _write(Path(folder), data)


def _write(folder: Path, manifest: Dict[str, Any]) -> Path:
    """Fill in and check the sha256 of every file entry of `manifest` (in place), validate, write."""
    where = str(folder / MANIFEST)
    for key in ("precisions", "frame_graphs"):
        entries = manifest.get(key)
        if not isinstance(entries, dict):
            continue  # the validator reports it
        for prec, entry in entries.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                continue  # the validator reports it
            path = folder / entry["file"]
            if not path.is_file():
                raise _fail(where, "%s.%s.file" % (key, prec), "names %s, which does not exist" % path)
            digest = sha256_file(path)
            if entry.get("sha256") is None:
                entry["sha256"] = digest
            elif entry["sha256"] != digest:
                raise _fail(where, "%s.%s.sha256" % (key, prec), "is %s but %s hashes to %s" % (entry["sha256"], path, digest))
    validate_manifest(manifest, where)
    text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
    return atomic_write_bytes(folder / MANIFEST, text.encode("utf-8"))
