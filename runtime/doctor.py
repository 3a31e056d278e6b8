"""`kdedge doctor`: what this machine can run, and the fix for each problem found.

Checks JetPack/L4T (/etc/nv_tegra_release), CUDA, TensorRT, pycuda, ONNX Runtime and its execution
providers, OpenCV (GStreamer, FFMPEG, GUI, and whether a pip OpenCV shadows JetPack's), cameras
(/dev/video*), the default bundle, and which backend `--backend auto` would pick. Every check
returns a plain dict so `--json` output and tests read the same thing. Nothing here fails on a
machine without a GPU: missing GPU pieces are warnings off a Jetson and failures on one.
"""
from __future__ import annotations

import glob
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"
TEGRA_RELEASE = "/etc/nv_tegra_release"
# L4T major -> JetPack major (NVIDIA's release tables): R32 = JetPack 4, R35 = JetPack 5, R36 = JetPack 6,
# R38 = JetPack 7 (Jetson Linux 38.2 = JetPack 7.0, Ubuntu 24.04). A newer L4T is reported as newer than
# this table rather than guessed.
JETPACK = {32: "4", 34: "5 (developer preview)", 35: "5", 36: "6", 38: "7"}
SUPPORTED_JETPACK = ("5", "6", "7")
JP_TRT_FIX = {
    "5": "JetPack 5 ships TensorRT 8.5 for Python 3.8: `sudo apt install python3-libnvinfer`; make your venv with --system-site-packages",
    "6": "JetPack 6 ships TensorRT 8.6/10.x for Python 3.10: `sudo apt install python3-libnvinfer`; make your venv with --system-site-packages",
    "7": "JetPack 7 ships TensorRT for its Python (Ubuntu 24.04): `sudo apt install python3-libnvinfer`; make your venv with "
         "--system-site-packages. TensorRT 11 runs on a Jetson only from JetPack 7.2.2 (TensorRT 11.4.1, AGX Orin and Thor)",
}
TRT11_MIN_JETPACK = "7.2.2"  # NVIDIA's TensorRT 11.4.1 Jetson migration page; 11.0-11.3 support no JetPack


def jetpack_for_l4t(major: int) -> str:
    """JetPack major for an L4T major release, from the table above (tested)."""
    if major in JETPACK:
        return JETPACK[major]
    if major > max(JETPACK):
        return "newer than kdedge's table (L4T R%d)" % major
    return "unknown"


def trt_jetpack_problem(trt_version: str, jetpack: Optional[str]) -> Optional[str]:
    """Why this TensorRT cannot be right for this JetPack, or None (pure, tested)."""
    m = re.match(r"(\d+)\.", trt_version or "")
    if not m or not jetpack:
        return None
    major = int(m.group(1))
    if major >= 11 and jetpack.split(" ")[0] in ("4", "5", "6"):
        return ("TensorRT %s on JetPack %s: TensorRT 11 runs on a Jetson only from JetPack %s (TensorRT 11.4.1); "
                "keep JetPack's own TensorRT 10.x/8.x" % (trt_version, jetpack, TRT11_MIN_JETPACK))
    return None


def opencv_origin(cv2_dir: str, pip_dists: List[str]) -> str:
    """'pip' when a pip wheel provides cv2 (a dist-info of opencv-python* exists, or cv2 sits under
    /usr/local, where `sudo pip` installs on Debian/Ubuntu, or in a site-packages folder), else 'system'."""
    if any(d.lower().replace("_", "-").startswith("opencv-") for d in pip_dists):
        return "pip"
    d = cv2_dir.replace("\\", "/")
    if d.startswith("/usr/local/") or "site-packages" in d:
        return "pip"
    return "system"


def _opencv_dists() -> List[str]:
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8
        return []
    names = []
    for dist in metadata.distributions():
        name = (dist.metadata.get("Name") or "")
        if name.lower().startswith("opencv"):
            names.append(name)
    return names


def _check(name: str, status: str, detail: str, fix: Optional[str] = None) -> Dict[str, Any]:
    return {"name": name, "status": status, "detail": detail, "fix": fix}


def parse_tegra_release(text: str) -> Optional[Dict[str, str]]:
    """'# R35 (release), REVISION: 3.1, GCID: ...' -> {'l4t': '35.3.1', 'jetpack': '5'}."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not m:
        return None
    major = int(m.group(1))
    return {"l4t": "%d.%s" % (major, m.group(2)), "jetpack": jetpack_for_l4t(major)}


def check_jetson(release_file: str = TEGRA_RELEASE) -> Dict[str, Any]:
    if not os.path.isfile(release_file):
        return _check("jetson", INFO, "not a Jetson (no %s)" % release_file)
    with open(release_file, "r", errors="replace") as f:
        info = parse_tegra_release(f.read())
    if info is None:
        return _check("jetson", WARN, "%s is not in the expected format" % release_file)
    model = ""
    if os.path.isfile("/proc/device-tree/model"):
        with open("/proc/device-tree/model", "r", errors="replace") as f:
            model = f.read().strip("\x00\n ") + ", "
    status = OK if info["jetpack"] in SUPPORTED_JETPACK else WARN
    return _check("jetson", status, "%sL4T %s = JetPack %s" % (model, info["l4t"], info["jetpack"]),
                  None if status == OK else "kdedge targets JetPack 5 (Python 3.8), 6 (Python 3.10) and 7")


def check_cuda() -> Dict[str, Any]:
    for path in ("/usr/local/cuda/version.json", "/usr/local/cuda/version.txt"):
        if os.path.isfile(path):
            with open(path, "r", errors="replace") as f:
                m = re.search(r'"cuda"\s*:\s*\{[^}]*"version"\s*:\s*"([\d.]+)"|CUDA Version ([\d.]+)', f.read())
            return _check("cuda", OK, "CUDA %s (%s)" % ((m.group(1) or m.group(2)) if m else "?", path))
    return _check("cuda", WARN, "no CUDA toolkit at /usr/local/cuda",
                  "on a Jetson CUDA comes with JetPack (`sudo apt install nvidia-jetpack`); not needed for the ONNX Runtime CPU backend")


def check_tensorrt(on_jetson: bool, jetpack: Optional[str]) -> List[Dict[str, Any]]:
    out = []
    bad = FAIL if on_jetson else WARN
    fix = JP_TRT_FIX.get(jetpack or "", "off a Jetson TensorRT is optional: the ONNX Runtime backend runs everywhere")
    try:
        import tensorrt as trt

        ver = trt.__version__
        names = ("execute_async_v3", "set_tensor_address", "set_input_shape")
        ctx = getattr(trt, "IExecutionContext", None)
        missing = [n for n in names if ctx is not None and not hasattr(ctx, n)]
        out.append(_check("tensorrt", OK if not missing else FAIL, "TensorRT %s%s" % (ver, "" if not missing else "; lacks " + ", ".join(missing)),
                          None if not missing else "kdedge needs TensorRT >= 8.5 (JetPack 5.1 or later)"))
        problem = trt_jetpack_problem(ver, jetpack) if on_jetson else None
        if problem:
            out.append(_check("tensorrt-jetpack", FAIL, problem, JP_TRT_FIX.get("7")))
    except ImportError as exc:
        out.append(_check("tensorrt", bad, "not importable (%s)" % exc, fix))
    try:
        import pycuda
        import pycuda.driver  # noqa: F401

        out.append(_check("pycuda", OK, "pycuda %s" % getattr(pycuda, "VERSION_TEXT", "?")))
    except ImportError as exc:
        out.append(_check("pycuda", bad, "not importable (%s)" % exc,
                          "`export PATH=/usr/local/cuda/bin:$PATH; pip install pycuda` (builds against JetPack's CUDA)"))
    return out


def check_onnxruntime() -> Dict[str, Any]:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return _check("onnxruntime", WARN, "not importable (%s)" % exc,
                      "pip install onnxruntime (CPU), or NVIDIA's onnxruntime-gpu wheel for your JetPack")
    return _check("onnxruntime", OK, "onnxruntime %s, providers: %s" % (ort.__version__, ", ".join(ort.get_available_providers())))


def check_openvino() -> Dict[str, Any]:
    """OpenVINO: optional, the fast CPU engine (x86 and Arm), with the CPU features it can use."""
    try:
        import openvino as ov

        caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception as exc:  # ImportError, or a plugin that cannot load
        return _check("openvino", WARN, "not usable (%s)" % exc,
                      "optional: pip install openvino (2024.4.0 on Python 3.8) for fast INT8/bf16 on CPUs")
    return _check("openvino", OK, "openvino %s, CPU: %s" % (ov.__version__.split("-")[0], ", ".join(caps)))


def check_opencv(on_jetson: bool) -> List[Dict[str, Any]]:
    try:
        import cv2
    except ImportError as exc:
        return [_check("opencv", FAIL, "not importable (%s)" % exc,
                       "on a Jetson use JetPack's OpenCV (`sudo apt install nvidia-opencv`, venv with --system-site-packages; "
                       "Ubuntu's python3-opencv is a different build); elsewhere pip install opencv-python-headless")]
    from kdedge.runtime.uri import GST_FIX, cv2_build_info, gstreamer_available

    info = cv2_build_info()
    where = os.path.dirname(cv2.__file__)
    pip_build = opencv_origin(where, _opencv_dists()) == "pip"
    out = [_check("opencv", OK, "OpenCV %s at %s (FFMPEG %s, GUI %s)" % (cv2.__version__, where, info.get("FFMPEG", "?"), info.get("GUI", "?")))]
    if gstreamer_available():
        out.append(_check("gstreamer", OK, "OpenCV has GStreamer: csi:// and rtsp:// use GStreamer pipelines "
                                          "(nvv4l2decoder on a Jetson); USB cameras use V4L2"))
    else:
        out.append(_check("gstreamer", FAIL if on_jetson else WARN,
                          "OpenCV has no GStreamer%s: csi:// cannot open" % (" (a pip wheel)" if pip_build else ""), GST_FIX))
    return out


def check_cameras() -> Dict[str, Any]:
    devices = sorted(glob.glob("/dev/video*"))
    if devices:
        return _check("cameras", OK, " ".join(devices))
    return _check("cameras", WARN, "no /dev/video* devices",
                  "plug in a USB camera or reseat the CSI ribbon (power off first); inputs also take files and test://")


def check_backend() -> Dict[str, Any]:
    from kdedge.errors import KdedgeError
    from kdedge.runtime.backends import available_backends, resolve_backend

    try:
        return _check("backend", OK, "--backend auto -> %s (available: %s)" % (resolve_backend("auto"), ", ".join(available_backends())))
    except KdedgeError as exc:
        return _check("backend", FAIL, exc.message, exc.fix)


def check_default_bundle(path: Optional[Path]) -> Dict[str, Any]:
    from kdedge.errors import KdedgeError
    from kdedge.runtime.bundle import load_bundle

    if path is None or not Path(path).is_dir():
        return _check("default bundle", WARN, "not installed (%s)" % path, "pass --model BUNDLE to python -m kdedge.camera")
    try:
        b = load_bundle(path)
    except KdedgeError as exc:
        return _check("default bundle", FAIL, exc.message, exc.fix)
    return _check("default bundle", OK, "%s: x%d %s, precisions %s" % (b.name, b.scale, b.color, ", ".join(sorted(b.precisions))))


def run_checks(default_bundle: Optional[Path] = None, release_file: str = TEGRA_RELEASE) -> List[Dict[str, Any]]:
    checks = [_check("python", OK if sys.version_info >= (3, 8) else FAIL,
                     "Python %s on %s" % (platform.python_version(), platform.machine()),
                     None if sys.version_info >= (3, 8) else "kdedge needs Python >= 3.8")]
    jet = check_jetson(release_file)
    checks.append(jet)
    on_jetson = jet["status"] != INFO
    m = re.search(r"JetPack (\d)", jet["detail"])
    try:
        import numpy

        checks.append(_check("numpy", OK, "numpy %s" % numpy.__version__))
    except ImportError as exc:
        checks.append(_check("numpy", FAIL, "not importable (%s)" % exc, "pip install numpy"))
        return checks
    checks.append(check_cuda())
    checks += check_tensorrt(on_jetson, m.group(1) if m else None)
    checks.append(check_onnxruntime())
    checks.append(check_openvino())
    checks += check_opencv(on_jetson)
    checks.append(check_cameras())
    checks.append(check_backend())
    checks.append(check_default_bundle(default_bundle))
    return checks


def format_checks(checks: List[Dict[str, Any]]) -> str:
    marks = {OK: "ok  ", WARN: "WARN", FAIL: "FAIL", INFO: "info"}
    lines = []
    for c in checks:
        lines.append("[%s] %-15s %s" % (marks[c["status"]], c["name"], c["detail"]))
        if c["fix"] and c["status"] in (WARN, FAIL):
            lines.append("       %-15s fix: %s" % ("", c["fix"]))
    n_fail = sum(c["status"] == FAIL for c in checks)
    n_warn = sum(c["status"] == WARN for c in checks)
    lines.append("%d problem(s), %d warning(s)" % (n_fail, n_warn))
    return "\n".join(lines)
