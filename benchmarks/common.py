"""Shared plumbing of the benchmark suite: paths, the rows being compared, results files, the machine.

Every script in `benchmarks/` compares the same *rows* (bicubic, OpenCV's FSRCNN, the published
teachers, kdedge's students in each precision). `discover_rows()` is the one place that decides what
each row is and whether its artifact exists yet; a row whose artifact is missing is kept, with status
"not yet produced" and the path looked for, so tables show the gap instead of hiding it.

Scripts are run as files (`python benchmarks/quality.py`), so they import each other as siblings
(the drivers in experiments/ put this folder on sys.path themselves); tests import only the package
and run the scripts as subprocesses. Results go to `benchmarks/results/` as JSON written atomically.
"""
from __future__ import annotations

import glob
import io
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from kdedge.common import atomic_write_bytes, sha256_file

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("KDEDGE_SHARED", REPO.parent / "shared")).resolve()
WEIGHTS = SHARED / "weights"
DATA = SHARED / "data"
RESULTS = HERE / "results"
QUICK_RESULTS = RESULTS / "quick"  # --quick development runs write here (ignored by git), never over the real tables
# Derived artifacts (teacher ONNX exports): rebuilt on demand, never committed (see .gitignore).
CACHE = HERE / ".cache"
DEFAULT_BUNDLE = REPO / "kdedge" / "assets" / "default_x2"
FAST_BUNDLE = REPO / "kdedge" / "assets" / "fast_x2"  # the speed-first student, when shipped
THREADS = 2  # the suite's contract: ONNX Runtime and OpenCV on 2 threads
SCALE = 2

NOT_PRODUCED = "not yet produced"


@dataclass
class Row:
    """One line of every table.

    kind: "bicubic" | "opencv" (FSRCNN .pb through OpenCV dnn) | "torch" (a published teacher or a
    kdedge checkpoint, evaluated in torch, timed as its ONNX export) | "onnx" (a file ORT runs).
    """

    key: str
    label: str
    kind: str
    group: str  # "baseline" | "teacher" | "kdedge"
    color: str = "y"
    path: Optional[str] = None  # .pb, .onnx, weights or checkpoint
    arch: Optional[str] = None  # for torch rows: registry name passed to load_model
    precision: Optional[str] = None  # fp32 / int8 / int8-naive / ...
    bundle: Optional[str] = None  # the bundle folder, for rows that are one of its precisions
    build: Optional[str] = None  # "naive-minmax": the suite makes `path` from the bundle's FP32 (upscalers.ensure_artifact)
    runtime: str = "onnxruntime"
    status: str = "ok"
    note: str = ""
    published: Dict[str, float] = field(default_factory=dict)  # published Y-PSNR, labelled as such

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _first(patterns: List[str]) -> Optional[Path]:
    for pat in patterns:
        hits = sorted(glob.glob(str(pat), recursive=True))
        if hits:
            return Path(hits[0])
    return None


def _bundle_precisions(bundle: Path) -> Dict[str, str]:
    """precision -> file of a bundle, read through the runtime's own manifest reader."""
    try:
        from kdedge.runtime.bundle import load_bundle

        b = load_bundle(bundle)
        return {k: str(Path(bundle) / v["file"]) for k, v in b.precisions.items()}
    except Exception:  # no bundle yet, or a bundle this checkout cannot read: rows say so
        return {}


def _student_description(bundle: Path) -> str:
    """' (repanchor w24 d2, teacher imdn)' from the bundle manifest's source, or ''."""
    try:
        src = json.loads((Path(bundle) / "manifest.json").read_text()).get("source", {})
    except (OSError, ValueError):
        return ""
    st = src.get("student") or {}
    if not st.get("arch"):
        return ""
    args = st.get("model_args") or {}
    bits = [str(st.get("arch", "?"))] + ["%s%s" % (k[0], args[k]) for k in ("width", "depth") if k in args]
    teacher = src.get("teacher")
    if isinstance(teacher, dict):
        name = teacher.get("arch") or teacher.get("name") or teacher.get("weights")
        teacher = "%s %s" % (teacher["spec"], name) if teacher.get("spec") and name else name
    return " (%s%s)" % (" ".join(bits), ", teacher %s" % os.path.basename(str(teacher)) if teacher else ", no teacher")


def discover_rows(bundle: Optional[Path] = None, twin: Optional[Path] = None) -> List[Row]:
    """Every row of the suite, in table order, each marked ok or 'not yet produced'."""
    bundle = Path(bundle or os.environ.get("KDEDGE_BENCH_BUNDLE") or DEFAULT_BUNDLE)
    rows: List[Row] = [
        Row("bicubic", "Bicubic (MATLAB; OpenCV INTER_CUBIC for speed)", "bicubic", "baseline", color="rgb",
            runtime="opencv-resize", published={"set5": 33.66, "set14": 30.24}),
    ]
    try:
        import cv2

        contrib = hasattr(cv2, "dnn_superres")
    except ImportError:
        contrib = False
    for key, name in (("fsrcnn", "FSRCNN"), ("fsrcnn-small", "FSRCNN-small")):
        pb = WEIGHTS / ("%s_x2.pb" % name)
        status = "ok" if pb.is_file() else "missing: %s" % pb
        if not contrib:
            status = "not run: this Python's OpenCV has no dnn_superres (use the benchmark env, benchmarks/requirements.txt)"
        rows.append(Row(key, "OpenCV dnn_superres %s x2" % name, "opencv", "baseline", path=str(pb),
                        runtime="opencv-dnn", status=status,
                        published={"set5": 37.00, "set14": 32.63} if key == "fsrcnn" else {},
                        note="published figure is the paper's network, not this .pb" if key == "fsrcnn" else ""))
    for key, arch, fname, label, pub in (
        ("imdn", "imdn", "IMDN_x2.pth", "IMDN x2 (teacher, published weights)", {"set5": 38.00, "set14": 33.63}),
        ("rlfn", "rlfn", "rlfn_x2.pth", "RLFN x2 (teacher, published weights)", {"set5": 38.07, "set14": 33.72}),
    ):
        w = WEIGHTS / fname
        rows.append(Row(key, label, "torch", "teacher", color="rgb", path=str(w), arch=arch,
                        status="ok" if w.is_file() else "missing: %s" % w, published=pub))

    files = _bundle_precisions(bundle)
    who = _student_description(bundle)
    for key, prec, label in (
        ("kdedge-fp32", "fp32", "kdedge student%s FP32" % who),
        ("kdedge-int8", "int8", "kdedge student%s INT8 (symmetric S8S8, TensorRT form)" % who),
        ("kdedge-int8-u8s8", "int8_u8s8", "kdedge student%s INT8 (U8S8, ORT CPU form)" % who),
    ):
        path = files.get(prec)
        status = "ok" if path and Path(path).is_file() else "%s (looked in %s)" % (NOT_PRODUCED, bundle)
        if prec == "int8_u8s8" and not path:
            continue  # optional precision: no row unless the bundle ships it
        rows.append(Row(key, label, "onnx", "kdedge", path=path, precision=prec, status=status, bundle=str(bundle)))

    # The naive INT8 (plain quantize_static, MinMax, no sensitivity pass) that the export stage keeps
    # for comparison; its name is not part of the bundle format, so look where export may put it.
    naive = _first([bundle / "*naive*.onnx", bundle.parent / "*naive*.onnx", RESULTS / "**" / "*naive*.onnx",
                    REPO / "runs" / "**" / "*naive*.onnx", REPO / "export" / "**" / "*naive*.onnx"])
    naive_row = Row("kdedge-int8-naive", "kdedge student INT8, naive PTQ (comparison)", "onnx", "kdedge",
                    path=str(naive) if naive else None, precision="int8-naive",
                    status="ok" if naive else "%s (no *naive*.onnx beside the bundle, in runs/ or results/)" % NOT_PRODUCED)
    if not naive and files.get("fp32") and Path(files["fp32"]).is_file():
        # The export keeps its naive INT8 only in its accuracy table; make the same model here from the
        # bundle's FP32 with kdedge.export's own calibration and quantizer (MinMax ranges, every node INT8).
        naive_row.path = str(CACHE / ("naive-minmax-%s.onnx" % sha256_file(files["fp32"])[:12]))
        naive_row.status, naive_row.build, naive_row.bundle = "ok", "naive-minmax", str(bundle)
        naive_row.note = ("built by the suite from the bundle's FP32: kdedge.export MinMax ranges on calib_data/, "
                          "every node quantized, symmetric INT8 (export's 'int8_naive_minmax')")
    rows.append(naive_row)

    # The teacher's share: the same student and recipe trained the other way, without the teacher when the
    # default was distilled (`kdedge train`), with it when the default was trained without one.
    twin = twin or os.environ.get("KDEDGE_BENCH_TWIN")
    note = ""
    if not twin:
        found, note = find_twin(bundle)
        twin = str(found) if found else None
    key, label, what = (("kdedge-noteacher", "same student trained without a teacher (FP32)", "teacher-less")
                        if default_is_distilled(bundle) else
                        ("kdedge-distilled", "same student distilled from a teacher (FP32)", "distilled"))
    rows.append(Row(key, label, "torch", "kdedge", path=twin, precision="fp32", note=note,
                    status="ok" if twin and Path(twin).is_file() else
                    "%s (no %s checkpoint with the default student's architecture and training budget in "
                    "runs/, kdedge/assets/ or benchmarks/results/)" % (NOT_PRODUCED, what)))

    # The same bundle files on OpenVINO (the CPU backend `auto` picks where it is installed): bf16 where
    # the CPU computes it natively (the FP32 file), and the INT8 files with f32 float layers.
    rows += openvino_rows(bundle, "kdedge", "kdedge student%s" % _student_description(bundle),
                          ("bf16", "int8_u8s8", "int8"))

    # The speed-first student (kdedge/assets/fast_x2), when one is shipped: its own point on the front.
    fast = Path(os.environ.get("KDEDGE_BENCH_FAST_BUNDLE") or FAST_BUNDLE)
    if (fast / "manifest.json").is_file():
        files, who = _bundle_precisions(fast), _student_description(fast)
        for key, prec, label in (("kdedge-fast-fp32", "fp32", "kdedge fast student%s FP32" % who),
                                 ("kdedge-fast-int8", "int8", "kdedge fast student%s INT8 (symmetric S8S8)" % who)):
            path = files.get(prec)
            rows.append(Row(key, label, "onnx", "kdedge", path=path, precision=prec, bundle=str(fast),
                            status="ok" if path and Path(path).is_file() else "%s (looked in %s)" % (NOT_PRODUCED, fast)))
        rows += openvino_rows(fast, "kdedge-fast", "kdedge fast student%s" % who, ("bf16", "int8_u8s8"))
    return rows


OV_LABELS = {"bf16": "bf16 (FP32 file)", "int8_u8s8": "INT8 (U8S8)", "int8": "INT8 (symmetric S8S8)"}


def openvino_rows(bundle: Path, prefix: str, who: str, precisions) -> List[Row]:
    """Rows running a bundle's files on kdedge's OpenVINO backend (runtime "openvino")."""
    files = _bundle_precisions(bundle)
    try:
        from kdedge.runtime.backends.openvino import cpu_has_bf16, openvino_available

        have, bf16 = openvino_available(), openvino_available() and cpu_has_bf16()
    except ImportError:
        have = bf16 = False
    rows = []
    for prec in precisions:
        path = files.get("fp32" if prec == "bf16" else prec)
        if not path:
            continue
        status = "ok"
        if not have:
            status = "not run: openvino is not installed (pip install openvino)"
        elif prec == "bf16" and not bf16:
            status = "not run: this CPU has no native bf16"
        rows.append(Row("%s-ov-%s" % (prefix, prec.replace("_", "-")), "%s %s" % (who, OV_LABELS[prec]), "onnx", "kdedge",
                        path=path, precision=prec, bundle=str(bundle), runtime="openvino", status=status))
    return rows


def results_dir(quick: bool = False) -> Path:
    return QUICK_RESULTS if quick else RESULTS


def _header(path) -> Optional[Dict[str, Any]]:
    try:
        from kdedge.checkpoint import read_header

        return read_header(path)
    except Exception:  # not a kdedge checkpoint, unreadable, or safetensors missing
        return None


def _budget(h: Dict[str, Any]) -> Dict[str, Any]:
    """What makes two runs the same training budget: steps done, scheduled steps, data, seed, and dead-channel
    recycling (`--recycle-interval`, absent from checkpoints older than it: off)."""
    c = h.get("config") or {}
    recycle = (c.get("recycle_interval") or 0, c.get("recycle_until") if c.get("recycle_interval") else None)
    return {"step": h.get("step"), "steps": c.get("steps"), "data": c.get("data"), "seed": c.get("seed"), "recycle": recycle}


def default_is_distilled(bundle: Path) -> bool:
    """Whether the default student learned from a teacher: its checkpoint's header, else the bundle's manifest."""
    ref = REPO / "kdedge" / "assets" / "student_x2.safetensors"
    h = _header(ref) if ref.is_file() else None
    if h is not None:
        return bool(h.get("teacher"))
    try:
        return bool(json.loads((Path(bundle) / "manifest.json").read_text()).get("source", {}).get("teacher"))
    except (OSError, ValueError):
        return True


def find_twin(bundle: Path):
    """(path, note) of the default student's twin: same architecture and model_args, the other teacher
    status (no teacher for a distilled default, a teacher for a teacher-less one), and the same budget
    (steps done = scheduled steps = the default student's, same data, seed and recycling).

    The reference is the default student checkpoint (kdedge/assets/student_x2.safetensors; without it,
    the bundle manifest's source.student, whose budget is unknown). Checkpoints under runs/,
    benchmarks/results/ and kdedge/assets/ are read by header; `last.safetensors` is preferred (exactly
    that many steps, never selected on validation). Without a strict match the row stays "not yet
    produced" and the note names the nearest such checkpoint, which is never measured."""
    ref_arch, ref_args, ref_budget, ref_teacher = None, None, None, None
    ref = REPO / "kdedge" / "assets" / "student_x2.safetensors"
    h = _header(ref) if ref.is_file() else None
    if h:
        ref_arch, ref_args, ref_budget, ref_teacher = h.get("arch"), h.get("model_args"), _budget(h), h.get("teacher")
    else:
        try:
            src = json.loads((Path(bundle) / "manifest.json").read_text()).get("source", {}).get("student", {})
            ref_arch, ref_args = src.get("arch"), src.get("model_args")
        except (OSError, ValueError):
            pass
    if not ref_arch:
        return None, "no default student to match against yet"
    distilled = default_is_distilled(bundle)
    how = "no teacher" if distilled else "a teacher"
    cands = []
    for pat in (REPO / "runs" / "**" / "*.safetensors", RESULTS / "**" / "*.safetensors",
                REPO / "kdedge" / "assets" / "*.safetensors"):
        for p in glob.glob(str(pat), recursive=True):
            if Path(p).resolve() == ref.resolve():
                continue
            hd = _header(p)
            if not hd or bool(hd.get("teacher")) == distilled or hd.get("arch") != ref_arch:
                continue
            if ref_args and (hd.get("model_args") or {}) != ref_args:
                continue
            b = _budget(hd)
            strict = ref_budget is not None and b == ref_budget and b["step"] == b["steps"]
            finished = b["step"] is not None and b["step"] == b["steps"]
            gap = -abs((b["steps"] or 0) - ((ref_budget or {}).get("steps") or 0))  # nearest schedule first
            cands.append((strict, finished, gap, Path(p).name.startswith("last"), os.path.getmtime(p), p, b))
    if not cands:
        return None, ""
    strict, _, _, _, _, path, b = max(cands)
    if not strict and ref_budget is not None:
        return None, ("nearest %s %s checkpoint: %s (step %s of %s), not the default student's budget "
                      "(step %s of %s); not measured" % ("teacher-less" if distilled else "distilled", ref_arch,
                                                         os.path.relpath(path, str(REPO)), b["step"], b["steps"],
                                                         ref_budget["step"], ref_budget["steps"]))
    note = "found by header: %s, %s, step %s of %s, same data, seed and recycling" % (ref_arch, how, b["step"], b["steps"])
    if ref_budget is None:
        note = "found by header: %s, %s, step %s (the default student's budget is unknown)" % (ref_arch, how, b["step"])
    if h and not ref_teacher:
        note += "; the default student was trained without a teacher"
    return Path(path), note


def write_json(path: Path, data: Any) -> Path:
    """Atomic JSON write (kdedge.common.atomic_write_bytes: temp file in the same folder, fsync, rename)."""
    return atomic_write_bytes(path, json.dumps(data, indent=1, sort_keys=False, default=str).encode("utf-8"))


def read_json(path: Path, default: Any = None) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def save_figure(fig, path: Path) -> Path:
    """Save a matplotlib figure atomically (PNG)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def load_avg() -> List[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def machine() -> Dict[str, Any]:
    """What the numbers were measured on: CPU, cores, library versions, commit, load."""
    info: Dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(),
                            "cpus": os.cpu_count(), "threads_used": THREADS}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                info["isa"] = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
                break
    except OSError:
        pass
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()
        info["mem_gib"] = round(int(mem[1]) / 2 ** 20, 1)
    except (OSError, IndexError, ValueError):
        pass
    for mod in ("numpy", "onnx", "onnxruntime", "cv2", "torch", "matplotlib"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            info[mod] = None
    try:
        import cv2

        info["opencv_contrib_dnn_superres"] = hasattr(cv2, "dnn_superres")
    except ImportError:
        info["opencv_contrib_dnn_superres"] = False
    try:
        info["git_commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                            capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        info["git_dirty"] = bool(dirty)
    except (OSError, subprocess.CalledProcessError):
        info["git_commit"] = None
    info["loadavg"] = load_avg()
    info["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return info


def limit_threads(n: int = THREADS) -> None:
    """Pin torch and OpenCV to the suite's thread count (ORT sessions set their own)."""
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
