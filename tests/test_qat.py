"""Quantization-aware fine-tuning (`kdedge qat`): the simulation is the exported Q/DQ graph, and export
writes the learned ranges instead of calibrating."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kdedge.errors import KdedgeError

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
REPO = Path(__file__).resolve().parents[1]


def _student(arch="repanchor", seed=0, **args):
    from kdedge.models import create_model
    from kdedge.models.descriptor import SRModel

    torch.manual_seed(seed)
    args = dict({"width": 8, "depth": 1}, **args) if arch != "espcn" else args
    module = create_model(arch, scale=2, color="y", **args)
    with torch.no_grad():  # trained-looking weights: the identity dominates, as after real training
        for p in module.parameters():
            p.mul_(0.5)
    return SRModel(module=module.eval(), arch=arch, scale=2, color="y", model_args=dict(args))


def _patches(n=4, size=24, seed=0):
    """Real image content (calibration photos), Y in [0, 1]: activations with realistic ranges."""
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for p in sorted((REPO / "calib_data").glob("*.png"))[:n]:
        im = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
        y, x = rng.integers(0, im.shape[0] - size), rng.integers(0, im.shape[1] - size)
        out.append(im[y:y + size, x:x + size])
    return torch.from_numpy(np.stack(out)[:, None].copy())


def _ort_qdq(proto, x):
    """ONNX Runtime without graph optimizations: exactly what the Q/DQ graph says."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, {"lr": x.numpy()})[0]


def _qdq_vs_sim(fp32, sim, x):
    """|ONNX Runtime on the Q/DQ file export writes from `fp32` with `sim`'s learned ranges - `sim(x)`|."""
    import onnx

    from kdedge.distill.qat import FLOAT_NODES
    from kdedge.export.calibrate import float_tensors
    from kdedge.export.quantize import quantize_qdq

    # every float tensor needs a range for the quantizer; those QAT does not learn feed float nodes only
    ranges = dict({t: (-1.0, 1.0) for t in float_tensors(onnx.load(str(fp32)))}, **{k: (-a, a) for k, a in sim.amax().items()})
    got = _ort_qdq(quantize_qdq(fp32, ranges, excluded=FLOAT_NODES), x)
    with torch.no_grad():
        return np.abs(got - sim(x).numpy())


def test_fake_quant_rounds_saturates_and_passes_gradients():
    from kdedge.distill.qat import fake_quant

    amax = torch.tensor(1.27, requires_grad=True)  # scale 0.01
    x = torch.tensor([0.004, 0.005, 0.006, -0.015, 2.0, -2.0], requires_grad=True)
    y = fake_quant(x, amax)
    # half to even like QuantizeLinear (0.5 -> 0, -1.5 -> -2), saturation at 127 and at -128 (not -127)
    assert torch.allclose(y, torch.tensor([0.0, 0.0, 0.01, -0.02, 1.27, -1.28]), atol=1e-6)
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]  # straight through inside the range only
    assert amax.grad is not None and float(amax.grad) != 0.0  # LSQ: the range is learned


def test_simulation_is_the_exported_qdq_graph(tmp_path):
    """ONNX Runtime without graph optimizations computes exactly what the QDQ graph says; the torch
    simulation QAT trains must match it (a range on the wrong tensor differs by ~1e-3 on average)."""
    from kdedge.distill.qat import QuantSim, calibrate_amax
    from kdedge.export.onnx_export import export_onnx

    model = _student()
    x = _patches()
    sim = QuantSim(model.module, calibrate_amax(model.module, [x])).eval()
    fp32 = export_onnx(model, tmp_path / "model.onnx")
    diff = _qdq_vs_sim(fp32, sim, x)
    # float accumulation order differs (ORT vs torch), so a value at a rounding tie may land one grid
    # step apart inside the net; on average the outputs agree to float precision
    assert diff.mean() < 2e-5 and diff.max() < 5e-3, (diff.mean(), diff.max())
    assert (diff > 1e-5).mean() < 0.01


def test_the_manifest_says_which_qat_step_its_ranges_come_from():
    from kdedge.export.int8 import qat_calibration_label

    qat = {"config": {"steps": 5000}, "history": [{"step": 0, "val_psnr": 30.0}, {"step": 500, "val_psnr": 30.2},
                                                  {"step": 1000, "val_psnr": 30.1}]}
    assert qat_calibration_label(qat) == "learned (kdedge qat, step 500 of 5000 kept on validation)"
    qat["history"][0]["val_psnr"] = 31.0  # no step beat the calibrated start: the ranges were never learned
    assert qat_calibration_label(qat).startswith("percentile (kdedge qat kept its calibrated start")


def test_qat_refuses_students_it_cannot_simulate():
    from kdedge.distill.qat import QuantSim

    with pytest.raises(KdedgeError, match="anchor / repanchor"):
        QuantSim(_student("espcn").module, {})


@pytest.mark.slow
def test_qat_checkpoint_exports_with_its_learned_ranges(tmp_path):
    pytest.importorskip("skimage")
    from onnx import numpy_helper

    from kdedge.checkpoint import read_header, save_checkpoint
    from kdedge.cli import main
    from kdedge.export.api import ExportOptions, export_bundle

    model = _student()
    ckpt = tmp_path / "student.safetensors"
    save_checkpoint(ckpt, model.module, arch="repanchor", model_args={"width": 8, "depth": 1}, scale=2, color="y")
    out = tmp_path / "qat"
    assert main(["qat", str(ckpt), "--out", str(out), "--steps", "4", "--eval-interval", "2",
                 "--patch", "16", "--batch", "2", "--graphics", "2", "--val-graphics", "1"]) == 0
    summary = json.loads((out / "qat.json").read_text())
    assert [h["step"] for h in summary["history"]] == [0, 2, 4]
    # photos and synthetic graphics are validated apart: the graphics are where learned ranges clip
    assert set(summary["val_by_subset"]) == {"photos", "graphics"}
    assert all(np.isfinite(v["fp32"]) and np.isfinite(v["int8"]) for v in summary["val_by_subset"].values())
    amax = read_header(out / "qat.safetensors")["qat"]["activation_amax"]

    calib = tmp_path / "calib"
    calib.mkdir()
    for p in sorted((REPO / "calib_data").glob("*.png"))[:10]:
        (calib / p.name).write_bytes(p.read_bytes())
    result = export_bundle(str(out / "qat.safetensors"),
                           ExportOptions(out=tmp_path / "bundle", int8=True, u8s8=True, calib=calib, log=lambda s: None))
    q = result["manifest"].precisions["int8"]["quantization"]
    assert q["excluded_nodes"] == ["/net/Concat", "/net/Add"] and "kdedge qat" in q["calibration"] and q["graph"] == "plain"
    kept = max(summary["history"], key=lambda h: h["val_psnr"])["step"]
    assert ("step %d of 4 kept" % kept in q["calibration"]) if kept else q["calibration"].startswith("percentile")
    import onnx

    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "bundle" / "model.int8.onnx")).graph.initializer}
    for name in ("lr", "/net/body/body.1/Relu_output_0", "/net/body/body.0/Conv_output_0"):
        assert np.isclose(float(inits[name + "_scale"]), amax[name] / 127, rtol=1e-6), name
    rows = {(r["backend"], r["precision"]) for r in result["table"]}
    assert ("ort-cpu", "int8_ptq") in rows  # the gate shows what post-training quantization would ship


def test_a_shipped_bundle_is_a_qat_starting_point():
    """The shipped bundles' training checkpoints are not shipped: QAT starts from their FP32 ONNX weights."""
    from kdedge.distill.qat import load_student

    bundle = REPO / "kdedge" / "assets" / "fast_x2"
    model = load_student(str(bundle))
    x = np.random.default_rng(0).random((1, 1, 20, 24), dtype=np.float32)
    from kdedge.export.onnx_export import open_onnx

    with open_onnx(bundle / "model.onnx") as backend:
        want = backend.infer({"lr": x})["sr"]
    with torch.no_grad():
        got = model.module(torch.from_numpy(x)).numpy()
    assert model.arch == "anchor" and np.abs(got - want).max() < 1e-5


def test_bad_qat_input_names_the_problem(tmp_path, capsys):
    """A QAT header whose ranges do not fit the exported graph, and bad flags: clear errors, no bundle."""
    from kdedge.checkpoint import save_checkpoint
    from kdedge.cli import main
    from kdedge.export.api import ExportOptions, export_bundle

    model = _student("anchor")
    ckpt = tmp_path / "stale.safetensors"
    save_checkpoint(ckpt, model.module, arch="anchor", model_args={"width": 8, "depth": 1}, scale=2, color="y",
                    extra={"qat": {"activation_amax": {"/net/body/body.7/Relu_output_0": 1.0}, "float_nodes": [],
                                   "config": {"steps": 1}}})
    calib = tmp_path / "calib"
    calib.mkdir()
    for p in sorted((REPO / "calib_data").glob("*.png"))[:10]:
        (calib / p.name).write_bytes(p.read_bytes())
    with pytest.raises(KdedgeError, match="do not match its exported graph"):
        export_bundle(str(ckpt), ExportOptions(out=tmp_path / "bundle", int8=True, calib=calib, log=lambda s: None))
    assert not (tmp_path / "bundle").exists()

    assert main(["qat", str(ckpt), "--gt-weight", "2", "--out", str(tmp_path / "q")]) == 1
    assert "--gt-weight must be in [0, 1]" in capsys.readouterr().err
    assert main(["qat", str(ckpt), "--graphics", "-1", "--out", str(tmp_path / "q")]) == 1
    assert "--graphics and --val-graphics count images" in capsys.readouterr().err
    assert main(["qat", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "q")]) == 1
    assert "missing.safetensors: no such file" in capsys.readouterr().err
    assert not (tmp_path / "q").exists()


def test_centring_keeps_the_interior_and_its_simulation_is_the_exported_graph(tmp_path):
    """`centre` turns relu(z) into relu(z) - f with the next bias compensating: the same outputs away
    from the borders (zero padding now means -f there). The centred net exports as Conv -> Clip(min=-f),
    and the simulation QAT trains (two Q/DQ pairs around the Clip, -f rounded onto the grid) is what ONNX
    Runtime computes from the Q/DQ file."""
    import onnx

    from kdedge.distill.qat import QuantSim, _plain_anchor, calibrate_amax, centre, floors, snap_weights
    from kdedge.export.onnx_export import export_onnx
    from kdedge.models.descriptor import SRModel

    model = _student()
    x = _patches(size=32)
    net = _plain_anchor(model.module).eval()
    amax = calibrate_amax(net, [x])
    centred = centre(net, amax).eval()
    with torch.no_grad():
        diff = (net(x) - centred(x)).abs()
    hr_margin = 2 * 2 * 2  # 2 convs + tail reach 3 LR pixels in; x2
    assert diff[..., hr_margin:-hr_margin, hr_margin:-hr_margin].max() < 1e-5
    assert diff.max() > 1e-3  # the borders differ: what the refit is for
    assert floors(centred) == pytest.approx([amax["/net/body/body.%d/Relu_output_0" % i] / 2 for i in (1, 3)])
    with pytest.raises(KdedgeError, match="centred already"):
        centre(centred, amax)

    sim = QuantSim(centred, calibrate_amax(centred, [x])).eval()
    assert sim.centred and sim.names == ["lr", "/net/body/body.1/Clip_output_0", "/net/body/body.3/Clip_output_0"]
    snap_weights(sim)
    fp32 = export_onnx(SRModel(module=sim.net, arch="anchor", scale=2, color="y",
                               model_args={"width": 8, "depth": 1, "floors": floors(sim.net)}), tmp_path / "model.onnx")
    ops = [n.op_type for n in onnx.load(str(fp32)).graph.node]
    assert ops.count("Clip") == 3 and "Relu" not in ops  # two floors + the output clip
    diff = _qdq_vs_sim(fp32, sim, x)
    assert diff.mean() < 2e-5 and diff.max() < 5e-3, (diff.mean(), diff.max())
    # the weights were written on their grid: rounding them again changes nothing
    from kdedge.distill.qat import fake_quant_weight

    for m in sim.quantized_convs():
        assert torch.equal(fake_quant_weight(m.weight), m.weight)


def test_floors_must_match_the_activations():
    from kdedge.models import create_model

    with pytest.raises(KdedgeError, match="3 floors for 2 activations"):
        create_model("anchor", scale=2, color="y", width=8, depth=1, floors=[0.1, 0.2, 0.3])


@pytest.mark.slow
def test_centred_qat_checkpoint_exports_with_its_floors_and_ranges(tmp_path):
    """`kdedge qat --centre`: refit, QAT, a checkpoint that loads as a centred anchor and exports with the
    learned ranges on the Clip tensors; its U8S8 ranges start at -floor."""
    pytest.importorskip("skimage")
    from onnx import numpy_helper

    from kdedge.checkpoint import read_header, save_checkpoint
    from kdedge.cli import main
    from kdedge.export.api import ExportOptions, export_bundle
    from kdedge.models.loading import load_model

    model = _student()
    ckpt = tmp_path / "student.safetensors"
    save_checkpoint(ckpt, model.module, arch="repanchor", model_args={"width": 8, "depth": 1}, scale=2, color="y")
    out = tmp_path / "qat"
    assert main(["qat", str(ckpt), "--out", str(out), "--centre", "--refit-steps", "4", "--steps", "2", "--eval-interval", "1",
                 "--patch", "16", "--batch", "2", "--graphics", "1", "--val-graphics", "1"]) == 0
    summary = json.loads((out / "qat.json").read_text())
    assert [h["step"] for h in summary["refit_history"]] == [0, 4] and [h["step"] for h in summary["history"]] == [0, 1, 2]
    assert all("fp32_shipped" in v for v in summary["val_by_subset"].values())
    header = read_header(out / "qat.safetensors")
    floors = header["model_args"]["floors"]
    assert len(floors) == 2 and all(f > 0 for f in floors)
    loaded = load_model(str(out / "qat.safetensors"))
    assert [type(m).__name__ for m in loaded.module.body] == ["Conv2d", "FloorReLU"] * 2
    amax = header["qat"]["activation_amax"]

    calib = tmp_path / "calib"
    calib.mkdir()
    for p in sorted((REPO / "calib_data").glob("*.png"))[:10]:
        (calib / p.name).write_bytes(p.read_bytes())
    export_bundle(str(out / "qat.safetensors"), ExportOptions(out=tmp_path / "bundle", int8=True, u8s8=True, calib=calib, log=lambda s: None))
    import onnx

    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "bundle" / "model.int8.onnx")).graph.initializer}
    name = "/net/body/body.1/Clip_output_0"
    assert np.isclose(float(inits[name + "_scale"]), amax[name] / 127, rtol=1e-6)
    u8 = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "bundle" / "model.int8_u8s8.onnx")).graph.initializer}
    scale, zero = float(u8[name + "_scale"]), int(u8[name + "_zero_point"])
    assert abs(-zero * scale + floors[0]) <= scale  # the uint8 grid starts at -floor, not at -amax
