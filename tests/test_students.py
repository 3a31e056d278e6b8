"""Students: shapes for every scale/colour, the anchor identity, exact re-parameterisation, cost figures."""
from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from kdedge.errors import KdedgeError  # noqa: E402
from kdedge.models import create_model, list_models  # noqa: E402
from kdedge.models.students import STUDENTS, EdgeBlock, complexity, deploy_copy  # noqa: E402


@pytest.mark.parametrize("name", STUDENTS)
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("color", ["y", "rgb"])
def test_output_shape_and_range(name, scale, color):
    c = 1 if color == "y" else 3
    m = create_model(name, scale=scale, color=color, width=8, depth=1)
    with torch.no_grad():
        y = m(torch.rand(2, c, 11, 7))
    assert y.shape == (2, c, 11 * scale, 7 * scale)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_registered():
    assert set(STUDENTS) <= set(list_models())
    assert STUDENTS == ("espcn", "anchor", "repanchor")  # read back from the registry: teachers are not students


@pytest.mark.parametrize("color", ["y", "rgb"])
def test_anchor_with_zero_tail_is_nearest_upsampling(color):
    c = 1 if color == "y" else 3
    m = create_model("anchor", scale=3, color=color, width=8, depth=1)
    torch.nn.init.zeros_(m.tail.weight)
    torch.nn.init.zeros_(m.tail.bias)
    x = torch.rand(1, c, 5, 6)
    expected = torch.nn.functional.interpolate(x, scale_factor=3, mode="nearest")
    assert torch.allclose(m(x), expected)


@pytest.mark.parametrize("scale,color", [(2, "y"), (3, "rgb"), (4, "y")])
def test_reparameterize_matches_multi_branch(scale, color):
    torch.manual_seed(0)
    c = 1 if color == "y" else 3
    m = create_model("repanchor", scale=scale, color=color, width=8, depth=2, branches=EdgeBlock.ALL_BRANCHES).eval()
    # Give the edge branches real weight so a wrong fusion of any of them shows.
    for n, p in m.named_parameters():
        if n.endswith("_scale"):
            p.data.normal_(0.0, 0.1)
        if n.endswith("conv1x1.weight"):
            p.data.normal_(0.0, 0.3)
    x = torch.rand(2, c, 13, 9)
    with torch.no_grad():
        ref = m(x)
        fused = deploy_copy(m)
        out = fused(x)
    assert (out - ref).abs().max() < 1e-5
    # Fused = a plain anchor net: its state dict loads into one.
    plain = create_model("anchor", scale=scale, color=color, width=8, depth=2)
    plain.load_state_dict(fused.state_dict())
    with torch.no_grad():
        assert (plain(x) - ref).abs().max() < 1e-5
    assert not any(type(x).__name__ == "EdgeBlock" for x in fused.modules())
    # The original keeps its branches (export fuses a copy).
    assert any(type(x).__name__ == "EdgeBlock" for x in m.modules())


def test_complexity_counts_macs_by_hand():
    # anchor x2 Y, width 24, depth 2: 1*24*9 + 2*24*24*9 + 24*4*9 = 11,448 (MEASURED.md's student)
    c = complexity(create_model("anchor", scale=2, color="y", width=24, depth=2))
    assert c["macs_per_lr_pixel"] == 11448
    assert c["params"] == 11448 + 24 * 3 + 4
    r = complexity(create_model("repanchor", scale=2, color="y", width=24, depth=2))
    assert r["macs_per_lr_pixel"] == 11448 and r["train_params"] > r["params"] == c["params"]
    e = complexity(create_model("espcn", scale=2, color="y", width=32, depth=2))
    assert e["macs_per_lr_pixel"] == 1 * 32 * 25 + 32 * 32 * 9 + 32 * 4 * 9


def test_bad_arguments():
    with pytest.raises(KdedgeError):
        create_model("anchor", scale=5)
    with pytest.raises(KdedgeError):
        create_model("anchor", color="lab")
    with pytest.raises(KdedgeError, match="unknown architecture"):
        create_model("no_such_student")


def test_default_repanchor_fuses_into_default_anchor():
    rep = create_model("repanchor")
    plain = create_model("anchor")
    plain.load_state_dict(deploy_copy(rep).state_dict())
    assert complexity(rep)["macs_per_lr_pixel"] == complexity(plain)["macs_per_lr_pixel"] <= 12500
    assert create_model("repanchor", branches="ecb").body[2].branches == EdgeBlock.ECB_BRANCHES
