"""IMDN / RLFN / RLFN-S: detection round trips, strict loading of the published weights, paper PSNR."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from kdedge.errors import KdedgeError  # noqa: E402
from kdedge.models import create_model, imdn, rlfn  # noqa: E402
from kdedge.models.loading import detect_architecture, load_model  # noqa: E402

# (registry name, builder kwargs): every knob moved at least once, small widths to stay fast.
VARIANTS = [
    ("imdn", dict(scale=2)),
    ("imdn", dict(scale=3)),
    ("imdn", dict(scale=4)),
    ("imdn", dict(scale=2, nf=32, num_modules=3)),
    ("imdn", dict(scale=4, nf=16, num_modules=2, in_channels=1, out_channels=1)),
    ("rlfn", dict(scale=2)),
    ("rlfn", dict(scale=4)),
    ("rlfn", dict(scale=3, feature_channels=24, num_blocks=2, esa_channels=8)),
    ("rlfn", dict(scale=2, feature_channels=16, num_blocks=1, in_channels=1, out_channels=1)),
    ("rlfn_s", dict(scale=2)),
    ("rlfn_s", dict(scale=4, num_blocks=4)),
]
DETECTORS = {"imdn": imdn.detect, "rlfn": rlfn.detect}
FAMILY = {"imdn": "imdn", "rlfn": "rlfn", "rlfn_s": "rlfn"}


def _full_args(name, kwargs):
    """The builder's defaults overlaid with kwargs: what detection must recover."""
    import inspect

    from kdedge.models import _REGISTRY

    sig = inspect.signature(_REGISTRY[name])
    args = {k: p.default for k, p in sig.parameters.items()}
    args.update(kwargs)
    return args


@pytest.mark.parametrize("name,kwargs", VARIANTS, ids=lambda v: str(v))
def test_round_trip_detects_equal_hyper_parameters(name, kwargs):
    sd = create_model(name, **kwargs).state_dict()
    found = detect_architecture(sd)
    assert found is not None
    arch, args = found
    assert arch == name
    assert args == _full_args(name, kwargs)
    # the other family's detector must not claim it
    for family, detect in DETECTORS.items():
        if family != FAMILY[name]:
            assert detect(sd) is None
    # and the detected hyper-parameters rebuild a network that takes the state dict strictly
    create_model(arch, **args).load_state_dict(sd, strict=True)


def test_rlfn_at_48_channels_is_reported_as_rlfn_s():
    arch, args = detect_architecture(create_model("rlfn", scale=2, feature_channels=48).state_dict())
    assert (arch, args["feature_channels"]) == ("rlfn_s", 48)


@pytest.mark.parametrize("name", ["imdn", "rlfn"])
def test_detection_is_strict_about_keys_and_shapes(name):
    sd = create_model(name, scale=2).state_dict()
    missing = dict(sd)
    missing.pop(sorted(k for k in sd if k.endswith("c5.weight"))[0])
    assert detect_architecture(missing) is None
    extra = dict(sd, **{"extra.weight": torch.zeros(1)})
    assert detect_architecture(extra) is None
    reshaped = dict(sd)
    key = sorted(k for k in sd if k.endswith("c2.weight") or k.endswith("c2_r.weight"))[0]
    reshaped[key] = torch.zeros(reshaped[key].shape[0], reshaped[key].shape[1] + 1, 3, 3)
    assert detect_architecture(reshaped) is None


@pytest.mark.parametrize("name,scale", [("imdn", 2), ("imdn", 3), ("rlfn", 4), ("rlfn_s", 2)])
def test_forward_shapes(name, scale):
    width = {"imdn": dict(nf=16, num_modules=2), "rlfn": dict(feature_channels=12, num_blocks=1), "rlfn_s": dict(num_blocks=1)}
    net = create_model(name, scale=scale, **width[name]).eval()
    with torch.no_grad():
        y = net(torch.rand(1, 3, 17, 20))
    assert tuple(y.shape) == (1, 3, 17 * scale, 20 * scale)
    assert torch.isfinite(y).all()


# --- the published state dicts in ../shared/weights -------------------------------------------

PUBLISHED = [
    ("IMDN_x2.pth", "imdn", 2, 64),
    ("IMDN_x3.pth", "imdn", 3, 64),
    ("IMDN_x4.pth", "imdn", 4, 64),
    ("rlfn_x2.pth", "rlfn", 2, 52),
    ("rlfn_x4.pth", "rlfn", 4, 52),
    ("rlfn_s_x2.pth", "rlfn_s", 2, 48),
]


@pytest.mark.shared
@pytest.mark.parametrize("filename,arch,scale,width", PUBLISHED)
def test_published_weights_load_strictly(shared_weights, filename, arch, scale, width):
    model = load_model(str(shared_weights / filename))  # detected; load_state_dict(strict=True) inside
    assert (model.arch, model.scale) == (arch, scale)
    assert model.model_args.get("nf", model.model_args.get("feature_channels")) == width
    assert model.value_range == (255.0 if arch.startswith("rlfn") else 1.0)
    # and through an explicit architecture name
    assert load_model(arch, weights=str(shared_weights / filename), scale=scale).arch == arch


@pytest.mark.shared
def test_wrong_scale_names_what_the_file_holds(shared_weights):
    with pytest.raises(KdedgeError, match=r"x2 IMDN.*x4 was asked"):
        load_model("imdn", weights=str(shared_weights / "IMDN_x2.pth"), scale=4)


@pytest.mark.shared
def test_wrong_architecture_names_what_the_file_holds(shared_weights):
    with pytest.raises(KdedgeError, match=r"x2 RLFN .*not IMDN"):
        load_model("imdn", weights=str(shared_weights / "rlfn_x2.pth"))
    with pytest.raises(KdedgeError, match=r"not an IMDN state dict"):
        load_model("imdn", weights=str(shared_weights / "realesr-animevideov3.pth"))


@pytest.mark.shared
def test_other_architectures_load_through_spandrel(shared_weights):
    pytest.importorskip("spandrel", reason="spandrel (optional extra) not installed")
    model = load_model(str(shared_weights / "realesr-animevideov3.pth"))
    assert model.arch == "spandrel:Compact"
    assert (model.scale, model.color, model.value_range) == (4, "rgb", 1.0)
    with torch.no_grad():
        y = model(torch.rand(1, 3, 16, 16))
    assert tuple(y.shape) == (1, 3, 64, 64)
    assert 0.0 <= float(y.mean()) <= 1.0


# --- reproduction of the papers' Set5 numbers (standard protocol, LR made by kdedge) ----------

@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.parametrize("arch,filename,scale,published", [
    ("rlfn", "rlfn_x2.pth", 2, 38.07),  # [0, 255] model
    ("imdn", "IMDN_x4.pth", 4, 32.21),  # module.-prefixed state dict
])
def test_teacher_reproduces_paper_on_set5(shared_dir, shared_weights, arch, filename, scale, published):
    evaluate = pytest.importorskip("kdedge.evaluate")
    torch.set_num_threads(2)
    upscaler = evaluate.load_upscaler(arch, weights=str(shared_weights / filename), scale=scale)
    result = evaluate.evaluate(upscaler, shared_dir / "data" / "test" / "Set5", progress=False)
    assert abs(result["psnr_y"] - published) <= 0.02, result["psnr_y"]
