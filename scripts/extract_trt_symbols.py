"""Which TensorRT Python API names exist in which TensorRT version: data for tests/test_trt_symbols.py.

TensorRT itself cannot be installed on machines without NVIDIA's index, but its bindings wheels can
be downloaded from PyPI (about 1 MB each) and their compiled module `tensorrt*.so` carries the
name of every class, method, property and enum value pybind11 registers. This script downloads
(`pip download --no-deps --only-binary=:all:`) the bindings of each version the runtime claims, runs
`strings` over the `.so` and keeps the identifier-like strings, then writes
tests/data/trt_symbols.json.gz: {"versions": ["8.6", "10.3", "11.4"], "names": {"execute_async_v3": "111",
"STRONGLY_TYPED": "011", ...}} (one character per version, "1" = present; names starting with "_" and
mangled C++ symbols are dropped; gzip keeps the committed file near 150 KB).

TensorRT 8.5 (JetPack 5.1) has no bindings wheel on PyPI: 8.6.1 stands in for it, and the JSON
says so. A name present in the file is a name that version's bindings register somewhere (the
check cannot tell which class owns it); a name absent is certainly not in that version's Python API.

Run: python scripts/extract_trt_symbols.py   (needs pip, network access to PyPI, and `strings`)
"""
from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEELS = {
    "8.6": ("tensorrt-bindings==8.6.1", "cp38"),  # stands in for 8.5 (JetPack 5.1): no 8.5 wheel exists
    "10.3": ("tensorrt-cu12-bindings==10.3.0", "cp310"),
    "11.4": ("tensorrt-cu12-bindings==11.4.0.106", "cp310"),
}
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "trt_symbols.json.gz"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{1,63}")


def download(requirement: str, py_tag: str, dest: Path) -> Path:
    version = py_tag[2] + "." + py_tag[3:]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", version,
           "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
           "-d", str(dest), requirement]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise SystemExit("no wheel downloaded for %s" % requirement)
    return wheels[-1]


def names_in_wheel(wheel: Path, work: Path) -> set:
    names = set()
    with zipfile.ZipFile(wheel) as z:
        sos = [n for n in z.namelist() if n.endswith(".so") and "tensorrt" in Path(n).name]
        if not sos:
            raise SystemExit("%s holds no tensorrt*.so" % wheel.name)
        for so in sos:
            path = Path(z.extract(so, str(work)))
            text = subprocess.run(["strings", "-n", "2", str(path)], check=True, capture_output=True, text=True).stdout
            for line in text.splitlines():
                names.update(m.group(0) for m in _IDENT.finditer(line))
    return names


def main() -> int:
    sources, sets = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for version, (req, tag) in WHEELS.items():
            dest = Path(tmp) / version
            dest.mkdir()
            wheel = download(req, tag, dest)
            sets[version] = names_in_wheel(wheel, dest)
            sources[version] = wheel.name
            print("%s: %s, %d names" % (version, wheel.name, len(sets[version])))
    versions = list(WHEELS)
    every = sorted(n for n in set().union(*sets.values()) if not n.startswith("_"))
    result = {
        "note": "8.6 stands in for 8.5 (JetPack 5.1): no 8.5 bindings wheel exists on PyPI. Names are the "
                "identifier-like strings of each version's tensorrt*.so (pybind11 registrations); "
                "one mask character per version, 1 = present.",
        "source": sources,
        "versions": versions,
        "names": {n: "".join("1" if n in sets[v] else "0" for v in versions) for n in every},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(result, separators=(",", ":"), sort_keys=True).encode("utf-8")
    OUT.write_bytes(gzip.compress(data, mtime=0))  # mtime 0: re-running gives the same bytes
    print("wrote", OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
