"""Activation-range equalization (kdedge.distill.equalize): same float function, even channel ranges."""
import pytest
import torch

from kdedge.distill.equalize import channel_ranges, equalize


def _fused_student(width=8, depth=2, seed=0):
    from kdedge.distill.qat import _plain_anchor
    from kdedge.models import create_model

    torch.manual_seed(seed)
    net = _plain_anchor(create_model("repanchor", scale=2, color="y", width=width, depth=depth)).eval()
    with torch.no_grad():  # uneven channels, as training leaves them: one channel 20x smaller than the rest
        for conv in [m for m in net.body if isinstance(m, torch.nn.Conv2d)]:
            conv.weight.mul_(torch.linspace(0.05, 1.0, conv.out_channels).view(-1, 1, 1, 1))
            conv.bias.abs_()
    return net


def test_equalize_keeps_the_function_and_evens_the_ranges():
    net = _fused_student()
    x = [torch.rand(2, 1, 24, 24) for _ in range(3)]
    before = channel_ranges(net, x)
    out = equalize(net, x, alpha=1.0, max_scale=100.0)
    with torch.no_grad():
        for xi in x:
            assert torch.allclose(out(xi), net(xi), atol=1e-5)
    after = channel_ranges(out, x)
    for b, a in zip(before, after):
        live = b > 1e-6
        assert (b[live].min() / b.max()) < 0.5  # uneven to start with (the test's premise)
        assert torch.allclose(a[live], b.max().expand_as(a[live]), rtol=1e-4)  # every live channel at the max
    assert net.body[0].weight.data_ptr() != out.body[0].weight.data_ptr()  # a copy: the input is untouched


def test_equalize_alpha_and_max_scale_bound_the_scales():
    net = _fused_student()
    x = [torch.rand(2, 1, 24, 24)]
    before = channel_ranges(net, x)
    assert all(torch.equal(a, b) for a, b in zip(channel_ranges(equalize(net, x, alpha=0.0), x), before))
    after = channel_ranges(equalize(net, x, alpha=1.0, max_scale=2.0), x)
    for b, a in zip(before, after):
        ratio = a / b.clamp_min(1e-6)
        assert ratio.max() <= 2.0 + 1e-4 and ratio.min() >= 1.0 - 1e-4
        assert ratio.max() > 1.5  # and some channel did move


def test_equalize_refuses_centred_students():
    from kdedge.distill.qat import centre, calibrate_amax

    net = _fused_student()
    x = [torch.rand(2, 1, 24, 24)]
    with pytest.raises(ValueError, match="FloorReLU"):
        equalize(centre(net, calibrate_amax(net, x)), x)


def test_qat_from_an_equalized_start_trains_the_weights(tmp_path):
    """`kdedge qat --equalize`: the equalized copy must be trainable (a copy of the frozen FP32 target is not),
    and the checkpoint computes the student's function up to what QAT changed."""
    pytest.importorskip("skimage")
    import json

    from kdedge.checkpoint import save_checkpoint
    from kdedge.cli import main
    from kdedge.models import create_model

    torch.manual_seed(0)
    module = create_model("repanchor", scale=2, color="y", width=8, depth=1)
    ckpt = tmp_path / "student.safetensors"
    save_checkpoint(ckpt, module, arch="repanchor", model_args={"width": 8, "depth": 1}, scale=2, color="y")
    out = tmp_path / "qat"
    assert main(["qat", str(ckpt), "--out", str(out), "--equalize", "1", "--steps", "2", "--eval-interval", "1",
                 "--patch", "16", "--batch", "2", "--graphics", "1", "--val-graphics", "1"]) == 0
    history = json.loads((out / "qat.json").read_text())["history"]
    assert [h["step"] for h in history] == [0, 1, 2]
    assert len({round(h["val_psnr_fp32"], 6) for h in history}) > 1  # the float weights moved
    assert json.loads((out / "qat.json").read_text())["val_psnr_fp32"] == pytest.approx(history[0]["val_psnr_fp32"], abs=1e-3)
