"""Every TensorRT `Class.member` the engine code uses exists, for that class, in each version it claims.

TensorRT cannot run here, so this check stands in for running it (it proves names, not behaviour).
The data (tests/data/trt_api.json.gz, written by scripts/extract_trt_symbols.py) are the pybind11
registrations of NVIDIA/TensorRT's own Python bindings at release/8.6 (standing in for 8.5, JetPack
5.1), release/10.3 (JetPack 6.1/6.2) and main (11.1) as `Class.member` pairs with class bases, plus
the identifier strings of the 11.4 bindings wheel (`wheel_names`: names only, no classes).

The code is parsed with `ast` and object TYPES are followed, not variable names:
- `trt` is the tensorrt module (`import tensorrt as trt`, `trt, cuda = import_tensorrt()`);
- `trt.X` is class X when the data has members of X; `trt.X(...)` is an X instance;
- a method call's result has the type in RETURNS below (Builder.create_network -> INetworkDefinition,
  INetworkDefinition.get_input -> ITensor, ...); every RETURNS entry is itself checked against the data;
- parameters say their type with a string annotation (`config: "trt.IBuilderConfig"`);
- `self.attr = <typed expression>` types `self.attr` in every method of that class.
Each attribute reached on a typed object is looked up as `Class.member` (exactly: no tail matching),
through the class's bases (Logger -> ILogger), for the versions its enclosing branches allow
(`if major >= 10:` ...). An attribute of a call result whose type is unknown is an error too, so
nothing typed is silently skipped. In 11.x branches the owner class and member must also be names of
the 11.4 wheel: a weaker, secondary check (names only, and a name may sit as the tail of a longer
string there), since no 11.4 sources exist; the class-exact check for 11.x is against 11.1.
"""
from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "trt_api.json.gz"
MAJORS = {"8.6": 8, "10.3": 10, "11.1": 11}
FILES = [REPO / "runtime" / "trt_build.py", REPO / "runtime" / "backends" / "trt.py"]
# Return types of the TensorRT methods the code calls and then uses as objects (facts of the API;
# each key is checked to be a real pair). A call missing here yields an untyped result: reaching an
# attribute of it fails the check, asking for an entry.
RETURNS = {
    "Builder.create_network": "INetworkDefinition",
    "Builder.create_builder_config": "IBuilderConfig",
    "Builder.create_optimization_profile": "IOptimizationProfile",
    "Builder.build_serialized_network": "IHostMemory",
    "INetworkDefinition.get_input": "ITensor",
    "INetworkDefinition.get_output": "ITensor",
    "OnnxParser.get_error": "ParserError",
    "IBuilderConfig.create_timing_cache": "ITimingCache",
    "IBuilderConfig.get_timing_cache": "ITimingCache",
    "Runtime.deserialize_cuda_engine": "ICudaEngine",
    "ICudaEngine.create_execution_context": "IExecutionContext",
}
PLAIN = "plain"  # a typed call known to return a non-TensorRT value (bool, str, Dims, int ...)
PLAIN_RETURNS = {"ICudaEngine.get_tensor_name", "ICudaEngine.get_tensor_mode", "ICudaEngine.get_tensor_dtype",
                 "ICudaEngine.get_tensor_shape", "ICudaEngine.get_tensor_profile_shape", "ITimingCache.serialize",
                 "IExecutionContext.get_tensor_shape", "IExecutionContext.set_input_shape",
                 "IExecutionContext.execute_async_v3", "IExecutionContext.set_tensor_address",
                 "OnnxParser.parse_from_file", "IBuilderConfig.set_timing_cache", "IBuilderConfig.set_flag",
                 "IBuilderConfig.set_memory_pool_limit", "IBuilderConfig.add_optimization_profile",
                 "IOptimizationProfile.set_shape", "tensorrt.nptype"}


def load_api():
    return json.loads(gzip.decompress(DATA.read_bytes()).decode("utf-8"))


class Api:
    def __init__(self, data):
        self.versions = data["versions"]
        self.pairs = data["pairs"]  # "Class.member" -> mask over versions
        self.bases = data["bases"]
        # 11.4 wheel strings and all their tails: the linker keeps a literal that ends another one only
        # once ("Logger" lives inside "ILogger"), so this secondary, name-only check must accept tails.
        self.wheel = {w[i:] for w in data.get("wheel_names", []) for i in range(len(w))}
        self.python_level = {p.rsplit(".", 1)[1] for p in data.get("python_level", [])}
        self.classes = {p.rsplit(".", 1)[0] for p in self.pairs}

    def mask(self, owner: str, member: str) -> Optional[str]:
        """Presence mask of owner.member, looking through the bases; None when no version has it."""
        seen, todo, bits = set(), [owner], None
        while todo:
            cls = todo.pop()
            if cls in seen:
                continue
            seen.add(cls)
            m = self.pairs.get("%s.%s" % (cls, member))
            if m is not None:
                bits = m if bits is None else "".join("1" if a == "1" or b == "1" else "0" for a, b in zip(bits, m))
            todo += self.bases.get(cls, [])
        return bits


# types: ("module",), ("class", Name), ("inst", Name), ("plain",), ("opaque", "Owner.member")
MODULE = ("module",)


class Checker:
    def __init__(self, api: Api, path: Path, source: Optional[str] = None):
        self.api = api
        self.path = path
        self.tree = ast.parse(source if source is not None else path.read_text(encoding="utf-8"))
        self.uses = []  # type: List[Tuple[str, str, int, Set[str]]]  # owner, member, line, versions
        self.errors = []  # type: List[str]

    # -- typing ------------------------------------------------------------------------------
    def _member(self, t, attr: str, line: int, allowed: Set[str], record: bool = True):
        """Record `attr` reached on type t; return the attribute's type."""
        if t is None or t == (PLAIN,):
            return None
        if t[0] == "opaque":
            self.errors.append("%s:%d .%s on the result of %s, whose type is unknown: add it to RETURNS"
                               % (self.path.name, line, attr, t[1]))
            return None
        owner = "tensorrt" if t == MODULE else t[1]
        if record:
            self.uses.append((owner, attr, line, set(allowed)))
        if t == MODULE:
            return ("class", attr) if attr in self.api.classes else ("plain",)
        qual = "%s.%s" % (owner, attr)
        if qual in self.api.classes:  # nested class (ILogger.Severity)
            return ("class", qual)
        if t[0] == "class":
            return ("inst", owner)  # an enum value, or a class attribute
        return ("bound", qual)

    def typeof(self, node, env: Dict[str, tuple], allowed: Set[str]):
        if isinstance(node, ast.Name):
            if node.id in ("trt", "tensorrt"):
                return MODULE
            return env.get(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return env.get("self." + node.attr)
            base = self.typeof(node.value, env, allowed)
            if base is not None and base[0] == "bound":  # a method reached but not called: treat as plain
                return None
            return self._member(base, node.attr, node.lineno, allowed)
        if isinstance(node, ast.Call):
            for a in list(node.args) + [k.value for k in node.keywords]:
                self.typeof(a, env, allowed)
            f = self.typeof(node.func, env, allowed)
            if f is None:
                return None
            if f[0] == "class":
                return ("inst", f[1])
            if f[0] == "bound":
                if f[1] in RETURNS:
                    return ("inst", RETURNS[f[1]])
                if f[1] in PLAIN_RETURNS:
                    return (PLAIN,)
                return ("opaque", f[1])
            if f == ("plain",):  # trt.nptype(...) and other module functions
                return (PLAIN,)
            return None
        for child in ast.iter_child_nodes(node):
            self.typeof(child, env, allowed)
        return None

    # -- walking -----------------------------------------------------------------------------
    def _versions(self, test) -> Optional[Set[str]]:
        if (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.comparators[0], ast.Constant)
                and isinstance(test.comparators[0].value, int)):
            left = test.left
            label = left.id if isinstance(left, ast.Name) else (left.attr if isinstance(left, ast.Attribute) else "")
            if "major" not in label.lower():
                return None
            k = test.comparators[0].value
            fn = {ast.GtE: lambda m: m >= k, ast.Gt: lambda m: m > k, ast.Lt: lambda m: m < k,
                  ast.LtE: lambda m: m <= k, ast.Eq: lambda m: m == k, ast.NotEq: lambda m: m != k}.get(type(test.ops[0]))
            return None if fn is None else {v for v in self.api.versions if fn(MAJORS[v])}
        return None

    def _param_env(self, fn: ast.FunctionDef, env: Dict[str, tuple]) -> Dict[str, tuple]:
        env = dict(env)
        for a in fn.args.args:
            ann = a.annotation
            if isinstance(ann, ast.Constant) and isinstance(ann.value, str) and ann.value.startswith("trt."):
                env[a.arg] = ("inst", ann.value[4:])
        return env

    def body(self, stmts, env: Dict[str, tuple], allowed: Set[str]) -> None:
        for st in stmts:
            self.stmt(st, env, allowed)

    def stmt(self, st, env: Dict[str, tuple], allowed: Set[str]) -> None:
        if isinstance(st, ast.FunctionDef):
            self.body(st.body, self._param_env(st, env), allowed)
        elif isinstance(st, ast.ClassDef):
            self.klass(st, env, allowed)
        elif isinstance(st, ast.If):
            cond = self._versions(st.test)
            self.typeof(st.test, env, allowed)
            self.body(st.body, env, allowed if cond is None else allowed & cond)
            self.body(st.orelse, env, allowed if cond is None else allowed - cond)
        elif isinstance(st, ast.Assign):
            t = self.typeof(st.value, env, allowed)
            for target in st.targets:
                if isinstance(target, ast.Name):
                    if t is not None and t[0] in ("inst", "opaque", "class"):
                        env[target.id] = t
                    else:
                        env.pop(target.id, None)
                elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                    pass  # typed by the class pre-pass
                else:
                    self.typeof(target, env, allowed)
        else:
            sub = [getattr(st, f) for f in ("body", "orelse", "finalbody") if isinstance(getattr(st, f, None), list)]
            handlers = getattr(st, "handlers", [])
            for child in ast.iter_child_nodes(st):
                if isinstance(child, ast.stmt) or child in handlers:
                    continue
                self.typeof(child, env, allowed)
            for block in sub:
                self.body(block, env, allowed)
            for h in handlers:
                self.body(h.body, env, allowed)

    def klass(self, cls: ast.ClassDef, env: Dict[str, tuple], allowed: Set[str]) -> None:
        """Type self.<attr> from its assignments in any method (two rounds: chains like self.engine =
        self._runtime.deserialize_cuda_engine(...)), then check every method with those types."""
        env = dict(env)
        for _ in range(2):
            for fn in [n for n in cls.body if isinstance(n, ast.FunctionDef)]:
                for node in ast.walk(fn):
                    if isinstance(node, ast.Assign) and len(node.targets) == 1:
                        t = node.targets[0]
                        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                            quiet = Checker(self.api, self.path, "")
                            typ = quiet.typeof(node.value, self._param_env(fn, env), set())
                            if typ is not None and typ[0] == "inst":
                                env["self." + t.attr] = typ
        self.body(cls.body, env, allowed)

    def run(self) -> "Checker":
        self.body(self.tree.body, {}, set(self.api.versions))
        return self

    def problems(self) -> List[str]:
        out = list(self.errors)
        for owner, member, line, allowed in self.uses:
            mask = self.api.mask(owner, member)
            for v in sorted(allowed):
                if mask is None or mask[self.api.versions.index(v)] != "1":
                    out.append("%s:%d %s.%s (TensorRT %s)" % (self.path.name, line, owner, member, v))
            if any(MAJORS[v] >= 11 for v in allowed) and self.api.wheel:
                for name in ([member] if owner == "tensorrt" else [owner.split(".")[-1], member]):
                    if name not in self.api.wheel and name not in self.api.python_level:
                        out.append("%s:%d %s.%s (%s is not a name of the 11.4 wheel)" % (self.path.name, line, owner, member, name))
        return sorted(set(out))


def check(path: Path, source: Optional[str] = None) -> Tuple[List[str], Checker]:
    c = Checker(Api(load_api()), path, source).run()
    return c.problems(), c


def test_api_data_is_there_and_plausible():
    data = load_api()
    api = Api(data)
    assert api.versions == ["8.6", "10.3", "11.1"]
    assert "release/8.6" in data["source"]["8.6"] and "release/10.3" in data["source"]["10.3"]
    assert data["wheel"].startswith("tensorrt_cu12_bindings-11.4")
    p = data["pairs"]
    assert p["IExecutionContext.execute_async_v3"] == "111" and p["IExecutionContext.set_input_shape"] == "111"
    assert p["NetworkDefinitionCreationFlag.STRONGLY_TYPED"] == "011"
    assert p["NetworkDefinitionCreationFlag.EXPLICIT_BATCH"] == "110"
    assert p["BuilderFlag.FP16"] == "110" and p["BuilderFlag.INT8"] == "110"  # TensorRT 11: strongly typed only
    assert p["IBuilderConfig.int8_calibrator"] == "110" and p["tensorrt.IInt8EntropyCalibrator2"] == "110"
    assert "BuilderFlag.STRONGLY_TYPED" not in p and "IBuilderConfig.memory_pool_limit" not in p
    assert api.mask("Logger", "WARNING") == "111"  # through the base ILogger (export_values)
    assert {"execute_async_v3", "set_tensor_address", "STRONGLY_TYPED"} <= api.wheel
    assert "IInt8EntropyCalibrator2" not in api.wheel and "int8_calibrator" not in api.wheel  # gone in 11.4
    assert "nptype" in api.python_level


def test_returns_table_names_real_pairs():
    api = Api(load_api())
    for key, typ in RETURNS.items():
        assert api.pairs.get(key) == "111", key
        assert typ in api.classes, typ
    for key in PLAIN_RETURNS:
        assert key in api.pairs, key


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_real_code_passes_for_every_version(path):
    problems, c = check(path)
    assert not problems, "TensorRT API used where the version lacks it:\n" + "\n".join(problems)
    owners = {o for o, _, _, _ in c.uses}
    assert len(c.uses) >= 12, "the checker found almost nothing in %s" % path.name
    # the types were followed, not guessed from names
    expect = {"trt_build.py": {"tensorrt", "Builder", "INetworkDefinition", "ITensor", "IBuilderConfig",
                               "IOptimizationProfile", "OnnxParser", "ITimingCache", "MemoryPoolType", "BuilderFlag",
                               "NetworkDefinitionCreationFlag", "Logger"},
              "trt.py": {"tensorrt", "Runtime", "ICudaEngine", "IExecutionContext", "TensorIOMode", "Logger"}}[path.name]
    assert expect <= owners, expect - owners


PLANTS = [
    # (file, real text, planted text, what the check must report)
    ("trt_build.py", "network.get_input(0).name", "network.get_input(0).nmae", "ITensor.nmae"),
    ("trt_build.py", "config.set_memory_pool_limit(", "config.memory_pool_limit(", "IBuilderConfig.memory_pool_limit"),
    ("trt.py", "self.context.set_input_shape(", "self.context.input_shape(", "IExecutionContext.input_shape"),
    ("trt.py", "self.engine.num_io_tensors", "self.engine.io_tensors", "ICudaEngine.io_tensors"),
    ("trt_build.py", "trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED", "trt.BuilderFlag.STRONGLY_TYPED",
     "BuilderFlag.STRONGLY_TYPED"),
    ("trt_build.py", "            raise KdedgeError(\"TensorRT 11 has no precision builder flags",
     "            config.set_flag(trt.BuilderFlag.FP16)\n            raise KdedgeError(\"TensorRT 11 has no precision builder flags",
     "BuilderFlag.FP16 (TensorRT 11.1)"),
    ("trt_build.py", "    timing = config.get_timing_cache()\n    if timing is not None:\n        atomic_write_bytes(cache_path, bytes(timing.serialize()))",
     "    timing = config.get_timing_cache()\n    if timing is not None:\n        atomic_write_bytes(cache_path, bytes(timing.serialise()))",
     "ITimingCache.serialise"),
    ("trt.py", "lo, _, hi = self.engine.get_tensor_profile_shape(", "lo, _, hi = self.engine.get_profile_shape(",
     "ICudaEngine.get_profile_shape (TensorRT 10.3)"),  # removed in 10: version-aware per class
]


@pytest.mark.parametrize("fname,real,planted,report", PLANTS, ids=[p[3] for p in PLANTS])
def test_each_planted_misspelling_fails_the_check(fname, real, planted, report):
    path = next(p for p in FILES if p.name == fname)
    text = path.read_text(encoding="utf-8")
    assert text.count(real) == 1, "the plant site moved: update PLANTS"
    problems, _ = check(path, text.replace(real, planted))
    assert any(report in p for p in problems), "planted %r not reported; got:\n%s" % (planted, "\n".join(problems))


def test_untyped_results_are_errors_not_skips(tmp_path):
    src = ("def f(trt, config: 'trt.IBuilderConfig'):\n"
           "    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))\n"
           "    x = builder.get_plugin_registry()\n"  # a real method, return type not in RETURNS
           "    x.anything\n")
    problems, _ = check(tmp_path / "f.py", src)
    assert any("Builder.get_plugin_registry, whose type is unknown" in p for p in problems)
