"""One inference path: `kdedge eval`, the export gate, parity and calibration run ONNX models through
the runtime's backends (kdedge.runtime.backends), on every CPU backend installed here."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kdedge.data.images import write_image
from kdedge.errors import KdedgeError
from test_runtime_helpers import make_bundle

pytest.importorskip("onnxruntime")
REPO = Path(__file__).resolve().parents[1]


def _installed_cpu_backends():
    from kdedge.runtime.backends import CPU_BACKENDS, available_backends

    return [b for b in CPU_BACKENDS if b in available_backends()]


CPU = _installed_cpu_backends()


@pytest.fixture(scope="module")
def hr_folder(tmp_path_factory):
    """Two small HR images (RGB and grey), sizes that need mod-cropping."""
    folder = tmp_path_factory.mktemp("hr")
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (9, 11, 3)).astype(np.uint8)
    write_image(folder / "a.png", np.kron(base, np.ones((5, 5, 1), np.uint8)))
    write_image(folder / "g.png", np.kron(base[..., 0], np.ones((4, 4), np.uint8))[:35, :41])
    return folder


class _Nearest:
    """What the tiny bundle computes, in numpy: the reference its eval must reproduce exactly."""

    scale, color, name = 2, "y", "numpy-nearest"

    def __call__(self, x):
        return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)


@pytest.mark.parametrize("backend", CPU)
def test_eval_cli_runs_a_bundle_on_each_cpu_backend(backend, tmp_path, hr_folder, capsys):
    from kdedge.cli import main
    from kdedge.evaluate import evaluate

    bundle = make_bundle(tmp_path / "b")
    assert main(["eval", "--model", str(bundle), "--backend", backend, "--data", str(hr_folder), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["backend"] == backend and got["precision"] == "fp32" and got["model"] == "b[fp32]"
    assert got["engine"].startswith({"ort-cpu": "onnxruntime-cpu", "openvino": "openvino-cpu"}[backend])
    ref = evaluate(_Nearest(), hr_folder, progress=False)
    assert got["psnr_y"] == pytest.approx(ref["psnr_y"], abs=1e-9)
    assert [r["psnr_y"] for r in got["images"]] == pytest.approx([r["psnr_y"] for r in ref["images"]], abs=1e-9)
    # the text report names what ran too
    assert main(["eval", "--model", str(bundle), "--backend", backend, "--data", str(hr_folder)]) == 0
    assert "backend %s, precision fp32" % backend in capsys.readouterr().out


def test_a_real_student_scores_the_same_on_every_backend(tmp_path, hr_folder):
    """A tiny trained-shape student (3x3 convs, ReLU, pixel shuffle) exported by kdedge: FP32 on OpenVINO
    is f32 (no silent bf16), so it scores what ONNX Runtime scores; bf16 is its own, labelled precision."""
    pytest.importorskip("torch")
    from kdedge.evaluate import evaluate, onnx_upscaler
    from kdedge.export.onnx_export import export_onnx
    from test_export_helpers import tiny_anchor

    path = export_onnx(tiny_anchor(), tmp_path / "m.onnx")
    scores = {}
    for backend in CPU:
        with onnx_upscaler(path, 2, backend=backend) as up:
            assert up.precision == "fp32" and up.color == "y"
            scores[backend] = evaluate(up, hr_folder, progress=False)["psnr_y"]
    assert max(scores.values()) - min(scores.values()) < 1e-3, scores
    if "openvino" in CPU:
        from kdedge.runtime.backends.openvino import cpu_has_bf16

        if cpu_has_bf16():
            with onnx_upscaler(path, 2, backend="openvino", precision="bf16") as up:
                res = evaluate(up, hr_folder, progress=False)
            assert res["precision"] == "bf16" and "bf16" in res["engine"]
            assert abs(res["psnr_y"] - scores["ort-cpu"]) < 0.5


def test_shipped_bundle_names_are_accepted():
    from kdedge.evaluate import load_upscaler

    with load_upscaler("default") as up:
        assert up.scale == 2 and up.name == "default_x2[int8]" and up.backend_name == "ort-cpu"
    with load_upscaler("fast", precision="fp32", backend=CPU[-1]) as up:
        assert up.name == "fast_x2[fp32]" and up.backend_name == CPU[-1]


def test_eval_bad_input_is_a_clear_error(tmp_path, monkeypatch):
    from kdedge.evaluate import load_upscaler

    bundle = make_bundle(tmp_path / "b")
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(KdedgeError, match="not a loadable ONNX model"):
        load_upscaler(str(bad), scale=2)
    with pytest.raises(KdedgeError, match="bf16 is computed by OpenVINO") as info:
        load_upscaler(str(bundle), precision="bf16", backend="ort-cpu")
    assert "--backend openvino" in info.value.fix
    with pytest.raises(KdedgeError, match="not a quantized"):
        load_upscaler(str(bundle / "model.onnx"), scale=2, precision="int8")
    with pytest.raises(KdedgeError, match="--backend applies to ONNX files and bundles"):
        load_upscaler("bicubic", scale=2, backend="openvino")
    with pytest.raises(KdedgeError, match="CPU backend"):
        load_upscaler(str(bundle), backend="tensorrt")
    # --backend openvino where openvino cannot be imported (a None entry makes `import openvino` fail)
    monkeypatch.setitem(__import__("sys").modules, "openvino", None)
    with pytest.raises(KdedgeError, match="OpenVINO is not importable") as info:
        load_upscaler(str(bundle), backend="openvino")
    assert "pip install openvino" in info.value.fix


def test_eval_cli_error_exits_nonzero_with_the_fix(tmp_path):
    import sys

    bundle = make_bundle(tmp_path / "b")
    out = subprocess.run([sys.executable, "-m", "kdedge", "eval", "--model", str(bundle), "--backend", "ort-cpu",
                          "--precision", "bf16", "--data", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 1 and "fix:" in out.stderr and "Traceback" not in out.stderr


def test_no_private_onnx_runtime_sessions():
    """Every ONNX model kdedge runs goes through runtime/backends/: no InferenceSession anywhere else,
    except benchmarks/peak.py, which times ONNX Runtime's raw kernels on purpose."""
    # tests/test_qat.py: ONNX Runtime with graph optimizations off is the Q/DQ operators' reference
    # semantics, which QAT's simulation must match; no backend offers that mode, on purpose
    allowed = {"runtime/backends/ort.py", "benchmarks/peak.py", "tests/test_eval_backends.py", "tests/test_qat.py"}
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"], cwd=str(REPO), capture_output=True, text=True, check=True)
        files = listed.stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot list the tracked files")
    offenders = [f for f in files if f not in allowed and "InferenceSession" in (REPO / f).read_text(encoding="utf-8")]
    assert not offenders, "run ONNX models through kdedge.runtime.backends (open_model), not a session: %s" % offenders
    me = "tests/test_eval_backends.py"
    for gone in ("def ort_session", "def session_runner", "class OnnxUpscaler"):  # the private wrappers it replaced
        assert not [f for f in files if f != me and gone in (REPO / f).read_text(encoding="utf-8")], gone
