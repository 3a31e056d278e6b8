"""Every TensorRT name the torch-free engine code uses exists in each TensorRT version it claims.

TensorRT cannot run here, so this is the check that stands in for running it: the code is parsed
with `ast`; every attribute reached from `trt` or from a TensorRT object (builder, network, parser,
config, profile, the timing cache, engine/context in the backend) is collected together with the
TensorRT versions its enclosing branches allow (`if major >= 10:` ..., `hasattr(x, "NAME")`), and
each name is looked up in tests/data/trt_symbols.json.gz, which scripts/extract_trt_symbols.py
extracted from the bindings wheels of 8.6 (standing in for 8.5: no 8.5 wheel exists), 10.3 and 11.4.
Object tracking is by variable name (a heuristic, stated here): names assigned from TensorRT calls,
and parameters called like the TensorRT objects above.
"""
from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "trt_symbols.json.gz"
MAJORS = {"8.6": 8, "10.3": 10, "11.4": 11}
TRT_OBJECTS = {"trt", "tensorrt", "logger", "builder", "network", "parser", "config", "profile", "calib_profile",
               "serialized", "timing", "cache", "engine", "context", "runtime", "trt_runtime", "trt_logger",
               "_runtime", "_logger"}
# Defined in tensorrt/__init__.py (pure Python, so absent from the .so) or by Python itself.
PYTHON_LEVEL = {"__version__", "__init__", "__class__", "nptype"}
# Functions used only with some versions (by the build plan), narrowing what they must support.
FUNCTION_SCOPE = {"make_entropy_calibrator": {8}}
NOT_TRT = {"cache": {"read", "write", "path"}}  # CalibrationCache instances share the name `cache`


def load_symbols() -> Tuple[List[str], Dict[str, str]]:
    data = json.loads(gzip.decompress(DATA.read_bytes()).decode("utf-8"))
    return data["versions"], data["names"]


def mask_of(name: str, names: Dict[str, str]) -> str:
    """Presence mask of `name`; also present where a longer string ends with it (the linker stores a
    literal that is the tail of another only once: "INPUT" lives inside "CONDITIONAL_INPUT")."""
    if name in names:
        return names[name]
    bits = [0] * len(next(iter(names.values())))
    for full, mask in names.items():
        if full.endswith(name):
            bits = [b | (c == "1") for b, c in zip(bits, mask)]
    return "".join("1" if b else "0" for b in bits) if any(bits) else None


def _condition_versions(test: ast.expr, versions: Dict[str, int], names: Dict[str, str], order: List[str]):
    """Versions for which `test` is true, or None when the condition says nothing about TensorRT."""
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.comparators[0], ast.Constant):
        left = test.left
        label = left.id if isinstance(left, ast.Name) else (left.attr if isinstance(left, ast.Attribute) else "")
        if "major" not in label.lower() or not isinstance(test.comparators[0].value, int):
            return None
        k = test.comparators[0].value
        op = type(test.ops[0])
        fn = {ast.GtE: lambda m: m >= k, ast.Gt: lambda m: m > k, ast.Lt: lambda m: m < k,
              ast.LtE: lambda m: m <= k, ast.Eq: lambda m: m == k, ast.NotEq: lambda m: m != k}.get(op)
        return None if fn is None else {v for v, m in versions.items() if fn(m)}
    if (isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "hasattr"
            and len(test.args) == 2 and isinstance(test.args[1], ast.Constant)):
        mask = mask_of(test.args[1].value, names) or "0" * len(order)
        return {v for v, bit in zip(order, mask) if bit == "1"}
    return None


def collect_uses(path: Path, order: List[str], names: Dict[str, str]) -> List[Tuple[str, int, Set[str]]]:
    """(name, line, versions claimed) for every TensorRT attribute used in `path`."""
    versions = {v: MAJORS[v] for v in order}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    uses: List[Tuple[str, int, Set[str]]] = []

    def visit(node: ast.AST, allowed: Set[str], tracked: Set[str], func: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            scope = FUNCTION_SCOPE.get(node.name)
            if scope is not None:
                allowed = {v for v in allowed if versions[v] in scope}
            if isinstance(node, ast.ClassDef):
                trt_base = any(isinstance(b, ast.Attribute) and isinstance(b.value, ast.Name) and b.value.id in ("trt", "tensorrt")
                               for b in node.bases)
                if trt_base:  # methods overriding a TensorRT interface must exist in it
                    for item in node.body:
                        if isinstance(item, ast.FunctionDef) and not item.name.startswith("__"):
                            uses.append((item.name, item.lineno, set(allowed)))
            if isinstance(node, ast.FunctionDef):
                tracked = set(tracked) | {a.arg for a in node.args.args if a.arg in TRT_OBJECTS}
            for child in node.body:
                visit(child, allowed, tracked, node.name if isinstance(node, ast.FunctionDef) else func)
            return
        if isinstance(node, ast.If):
            cond = _condition_versions(node.test, versions, names, order)
            visit(node.test, allowed, tracked, func)
            body_allowed = allowed if cond is None else allowed & cond
            else_allowed = allowed if cond is None else allowed - cond
            for child in node.body:
                visit(child, body_allowed, tracked, func)
            for child in node.orelse:
                visit(child, else_allowed, tracked, func)
            return
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Call, ast.Attribute)):
            root = node.value
            while isinstance(root, (ast.Call, ast.Attribute)):
                root = root.func if isinstance(root, ast.Call) else root.value
            if isinstance(root, ast.Name) and root.id in tracked | {"trt"}:
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        tracked.add(t.id)
        if isinstance(node, ast.Attribute):
            base = node.value
            chain = [node.attr]
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id == "self" and len(chain) > 1 and chain[-1] in TRT_OBJECTS:
                chain = chain[:-1]  # self.engine.get_tensor_name -> get_tensor_name
                base = ast.Name(id=chain and "engine" or "self")
                tracked = tracked | {"engine"}
            if isinstance(base, ast.Name) and (base.id in tracked or base.id in ("trt", "tensorrt")):
                skip = NOT_TRT.get(base.id, set())
                for attr in chain:
                    if attr not in PYTHON_LEVEL and attr not in skip:
                        uses.append((attr, node.lineno, set(allowed)))
            return
        for child in ast.iter_child_nodes(node):
            visit(child, allowed, tracked, func)

    module_tracked = {"trt", "tensorrt"}
    for stmt in tree.body:
        visit(stmt, set(order), set(module_tracked), "")
    return uses


def _files() -> List[Path]:
    files = [REPO / "runtime" / "trt_build.py"]
    backends = REPO / "runtime" / "backends"
    if backends.is_dir():  # the runtime's TensorRT backend (written by the runtime helper)
        files += sorted(set(backends.glob("*tensorrt*.py")) | set(backends.glob("trt.py")))
    return files


def test_symbol_data_is_there_and_plausible():
    order, names = load_symbols()
    assert order == ["8.6", "10.3", "11.4"]
    # Facts ENVIRONMENT.md states about these wheels, re-read from the committed data.
    assert names["execute_async_v3"] == "111" and names["set_tensor_address"] == "111"
    assert names["STRONGLY_TYPED"] == "011"
    assert names["IInt8EntropyCalibrator2"] == "110" and names["int8_calibrator"] == "110"


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_every_trt_name_exists_in_the_versions_claimed(path):
    order, names = load_symbols()
    uses = collect_uses(path, order, names)
    assert len(uses) >= 10, "the collector found almost nothing in %s: is it still TensorRT code?" % path.name
    missing = []
    for name, line, allowed in uses:
        mask = mask_of(name, names)
        for v in allowed:
            if mask is None or mask[order.index(v)] != "1":
                missing.append("%s:%d %s (TensorRT %s)" % (path.name, line, name, v))
    assert not missing, "TensorRT names used where the version lacks them:\n" + "\n".join(sorted(set(missing)))


def test_the_collector_catches_a_name_outside_its_version(tmp_path):
    """The check itself can fail: STRONGLY_TYPED on 8.x, or the calibrator on 11, are reported."""
    order, names = load_symbols()
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(trt, major, builder, config):\n"
        "    flag = trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED\n"
        "    if major < 11:\n"
        "        config.int8_calibrator = None\n"
        "    else:\n"
        "        config.set_flag(trt.BuilderFlag.STRONGLY_TYPED)\n"
        "    network = builder.create_network(0)\n"
        "    network.add_input_v99\n"
    )
    uses = collect_uses(bad, order, names)
    found = {(n, frozenset(v)) for n, _, v in uses}
    assert ("STRONGLY_TYPED", frozenset(order)) in found  # unguarded: claimed for 8.6 too, where it is absent
    assert ("int8_calibrator", frozenset({"8.6", "10.3"})) in found
    assert ("set_flag", frozenset({"11.4"})) in found
    assert any(n == "add_input_v99" for n, _, _ in uses)  # tracked through network = builder.create_network()
    assert mask_of("add_input_v99", names) is None
    assert mask_of("STRONGLY_TYPED", names) == "011"
    assert mask_of("INPUT", names) == "111"  # tail-merged into CONDITIONAL_INPUT
