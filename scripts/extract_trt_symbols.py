"""Which `Class.member` pairs TensorRT's Python API has, per version: data for tests/test_trt_symbols.py.

TensorRT cannot be installed on the development machines, so the check of the engine code stands on
the API as TensorRT's own sources define it. The Python bindings are pybind11 registrations in the
TensorRT OSS repository (python/src/infer/pyCore.cpp, pyGraph.cpp, pyFoundationalTypes.cpp,
pyInt8.cpp, pyPlugin.cpp, parsers/pyOnnx.cpp) plus a few Python-level additions in
python/packaging/bindings_wheel/tensorrt/__init__.py (`nptype`, `__version__`, `Logger.Severity`...).
This script reads them at three refs and writes, per version, every pair it finds:

    py::class_<IExecutionContext>(m, "IExecutionContext") .def("set_input_shape", ...)
        -> "IExecutionContext.set_input_shape"
    py::enum_<BuilderFlag>(m, "BuilderFlag") .value("FP16", ...)   -> "BuilderFlag.FP16"
    py::class_<DefaultLogger, ILogger>(m, "Logger")                -> bases["Logger"] = ["ILogger"]
    py::enum_<ILogger::Severity>(loggerBinding, "Severity") ... .export_values()
                                                                   -> "ILogger.Severity", "ILogger.WARNING"
    m.def("get_plugin_registry", ...) / py::class_<...>(m, "Builder") -> "tensorrt.get_plugin_registry", "tensorrt.Builder"

Refs: release/8.6 (8.6.1, standing in for 8.5 = JetPack 5.1, whose sources are not in the OSS
repository's Python tree), release/10.3 (JetPack 6.1/6.2) and main (11.1 when extracted). The
newest bindings wheel (tensorrt-cu12-bindings 11.4.0.106) has no sources; its compiled module's
identifier strings are kept as a flat, exact-name list (`wheel_names`), so the check can also demand
that every member used exists by exact name in 11.4 (ownership cannot be read from a .so).

Run (needs git, and for the wheel pip + network access to PyPI and `strings`):
    git clone https://github.com/NVIDIA/TensorRT trt-src   (or any clone with those refs)
    python scripts/extract_trt_symbols.py --git-dir trt-src/.git [--wheel tensorrt-cu12-bindings==11.4.0.106]
"""
from __future__ import annotations

import argparse
import ast
import gzip
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Set, Tuple

REFS = {"8.6": "release/8.6", "10.3": "release/10.3", "11.1": "main"}
NOTE = ("8.6 stands in for 8.5 (JetPack 5.1). Pairs come from the pybind11 registrations of each ref's "
        "python/src/**/*.cpp and the Python-level names of its tensorrt/__init__.py; 'module' members are "
        "tensorrt.<name>. wheel_names: identifier strings of the 11.4 bindings wheel's .so "
        "(names only, no class ownership; the linker stores a literal that ends another only once, so a name "
        "may appear only as the tail of a longer string: 'Logger' inside 'ILogger').")
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "trt_api.json.gz"
_CHAIN = re.compile(r"\.\s*(def|def_static|def_property|def_property_readonly|def_property_static|"
                    r"def_property_readonly_static|def_readwrite|def_readonly|value)\s*\(\s*\"(\w+)\"")
_REG = re.compile(r"py::(class_|enum_)\s*<")


def _git(git_dir: str, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", git_dir] + list(args), check=True, capture_output=True,
                          text=True).stdout


def _strip_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    return re.sub(r"//[^\n]*", " ", src)


def _string_end(src: str, i: int) -> int:
    """Index of the '"' closing the C++ string literal that opens at src[i] (escapes skipped)."""
    j, n = i + 1, len(src)
    while j < n and src[j] != '"':
        j += 2 if src[j] == "\\" else 1
    return j


def _match(src: str, i: int, open_c: str, close_c: str) -> int:
    """Index just past the bracket closing the one at src[i] (string literals skipped)."""
    depth, j, n = 0, i, len(src)
    while j < n:
        c = src[j]
        if c == '"':
            j = _string_end(src, j)
        elif c == open_c:
            depth += 1
        elif c == close_c:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return n


def _statement_end(src: str, i: int) -> int:
    """Index of the ';' ending the statement that starts at i (brackets and strings skipped)."""
    depth, j, n = 0, i, len(src)
    while j < n:
        c = src[j]
        if c == '"':
            j = _string_end(src, j)
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == ";" and depth <= 0:
            return j
        j += 1
    return n


def _split_template(args: str) -> List[str]:
    out, depth, cur = [], 0, ""
    for c in args:
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        if c == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += c
    if cur.strip():
        out.append(cur.strip())
    return out


def _chain_members(text: str) -> List[str]:
    """Names registered by a chain of .def(...)/.value(...) calls at the top level of `text`."""
    names, depth = [], 0
    j = 0
    while j < len(text):
        c = text[j]
        if c == '"':
            j += 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "." and depth == 0:
            m = _CHAIN.match(text, j)
            if m:
                names.append(m.group(2))
        j += 1
    return names


def parse_bindings(sources: List[str]) -> Tuple[Set[str], Dict[str, List[str]]]:
    """Pairs ("Class.member", "tensorrt.Name") and bases {"Logger": ["ILogger"]} from pybind11 C++."""
    pairs = set()  # type: Set[str]
    bases = {}  # type: Dict[str, List[str]]
    cpp_to_py = {}  # type: Dict[str, str]
    var_to_py = {}  # type: Dict[str, str]
    pending_bases = []  # type: List[Tuple[str, List[str]]]
    texts = [_strip_comments(s) for s in sources]
    for src in texts:
        for m in _REG.finditer(src):
            kind = m.group(1)
            t_end = _match(src, m.end() - 1, "<", ">")
            targs = _split_template(src[m.end():t_end - 1])
            rest = src[t_end:]
            hm = re.match(r"\s*(\w+)?\s*([({])\s*(\w+)\s*,\s*\"(\w+)\"", rest)
            if not hm:
                continue
            var, opener, parent, pyname = hm.group(1), hm.group(2), hm.group(3), hm.group(4)
            scope = "tensorrt" if parent == "m" else var_to_py.get(parent)
            if scope is None:
                continue
            qual = pyname if scope == "tensorrt" else "%s.%s" % (scope, pyname)
            pairs.add("%s.%s" % (scope, pyname))
            cpp_to_py[targs[0].split("::")[-1]] = qual
            if var:
                var_to_py[var] = qual
            if kind == "class_" and len(targs) > 1:
                pending_bases.append((qual, [a.split("::")[-1] for a in targs[1:]]))
            ctor_end = _match(src, t_end + hm.start(2), opener, ")" if opener == "(" else "}")
            stmt_end = _statement_end(src, ctor_end)
            chain = src[ctor_end:stmt_end]
            members = _chain_members(chain)
            for name in members:
                pairs.add("%s.%s" % (qual, name))
            if kind == "enum_" and "export_values" in chain and scope != "tensorrt":
                for name in members:
                    pairs.add("%s.%s" % (scope, name))
    for src in texts:  # later statements on a named binding: loggerBinding.def("log", ...);
        for var, qual in var_to_py.items():
            for m in re.finditer(r"\b%s\s*(?=\.\s*(def|value)\w*\s*\()" % re.escape(var), src):
                for name in _chain_members(src[m.end():_statement_end(src, m.end())]):
                    pairs.add("%s.%s" % (qual, name))
        for m in re.finditer(r"\bm\s*\.\s*def\s*\(\s*\"(\w+)\"", src):
            pairs.add("tensorrt." + m.group(1))
        for m in re.finditer(r"\bm\s*\.\s*attr\s*\(\s*\"(\w+)\"\s*\)\s*=", src):
            pairs.add("tensorrt." + m.group(1))
    for qual, candidates in pending_bases:
        known = [cpp_to_py[c] for c in candidates if c in cpp_to_py]
        if known:
            bases[qual] = known
    return pairs, bases


def parse_python_init(text: str) -> Set[str]:
    """Python-level names of tensorrt/__init__.py: module functions/constants and Class.attr assignments."""
    text = re.sub(r"##\w+##", "tensorrt", text)  # build-time placeholders (module name, version, flags)
    pairs = set()  # type: Set[str]
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            pairs.add("tensorrt." + node.name)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    pairs.add("tensorrt." + t.id)
                elif isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name):
                    pairs.add("%s.%s" % (t.value.id, t.attr))
    return pairs


def extract_ref(git_dir: str, ref: str) -> Tuple[Set[str], Dict[str, List[str]], str, Set[str]]:
    commit = _git(git_dir, "rev-parse", ref).strip()
    files = [f for f in _git(git_dir, "ls-tree", "-r", "--name-only", commit, "python/src").split()
             if f.endswith(".cpp")]
    sources = [_git(git_dir, "show", "%s:%s" % (commit, f)) for f in files]
    pairs, bases = parse_bindings(sources)
    init = _git(git_dir, "show", "%s:python/packaging/bindings_wheel/tensorrt/__init__.py" % commit)
    python_level = parse_python_init(init)
    return pairs | python_level, bases, commit, python_level


def wheel_names(requirement: str) -> Tuple[List[str], str]:
    """Exact identifier strings of the tensorrt*.so in a bindings wheel (downloaded with pip)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.10", "--platform", "manylinux_2_28_x86_64",
                        "--platform", "manylinux_2_17_x86_64", "-d", tmp, requirement], check=True,
                       stdout=subprocess.DEVNULL)
        wheel = sorted(Path(tmp).glob("*.whl"))[-1]
        names = set()  # type: Set[str]
        with zipfile.ZipFile(str(wheel)) as z:
            for so in [n for n in z.namelist() if n.endswith(".so") and "tensorrt" in Path(n).name]:
                path = z.extract(so, tmp)
                out = subprocess.run(["strings", "-n", "2", path], check=True, capture_output=True, text=True).stdout
                for line in out.splitlines():
                    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{1,63}", line):  # whole strings only
                        names.add(line)
        return sorted(names), wheel.name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--git-dir", required=True, help="a TensorRT OSS clone's .git with the refs " + ", ".join(REFS.values()))
    ap.add_argument("--wheel", default="tensorrt-cu12-bindings==11.4.0.106", help="bindings wheel for the flat name list ('' to skip)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    versions = list(REFS)
    per, sources, all_bases = {}, {}, {}  # type: Dict[str, Set[str]], Dict[str, str], Dict[str, List[str]]
    for version, ref in REFS.items():
        pairs, bases, commit, python_level = extract_ref(args.git_dir, ref)
        per[version] = pairs
        sources[version] = "NVIDIA/TensorRT@%s (%s)" % (ref, commit)
        for k, v in bases.items():
            all_bases.setdefault(k, [])
            all_bases[k] += [b for b in v if b not in all_bases[k]]
        print("%s: %s, %d pairs" % (version, sources[version], len(pairs)))
    every = sorted(set().union(*per.values()))
    result = {
        "note": NOTE, "versions": versions, "source": sources, "bases": all_bases,
        "pairs": {p: "".join("1" if p in per[v] else "0" for v in versions) for p in every},
    }
    result["python_level"] = sorted(python_level)  # of the newest ref: not in any .so
    if args.wheel:
        names, wheel = wheel_names(args.wheel)
        result["wheel"] = wheel
        result["wheel_names"] = names
        print("%s: %d names" % (wheel, len(names)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip.compress(json.dumps(result, separators=(",", ":"), sort_keys=True).encode("utf-8"), mtime=0))
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
