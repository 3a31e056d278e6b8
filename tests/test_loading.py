"""Safe reading of third-party weight files and `load_model`'s dispatch and error messages."""
from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from kdedge.errors import KdedgeError  # noqa: E402
from kdedge.models import create_model  # noqa: E402
from kdedge.models.loading import load_model  # noqa: E402
from kdedge.models.weights import canonicalize, load_state_dict  # noqa: E402


def _tiny_imdn(scale=2):
    return create_model("imdn", scale=scale, nf=16, num_modules=2)


def _equal(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


class _Payload:
    """Unpickling this runs code: it creates the marker file named at pickling time."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"params_ema": sd, "params": {k: v * 0 for k, v in sd.items()}},
    lambda sd: {"state_dict": {"module." + k: v for k, v in sd.items()}, "epoch": 3},
    lambda sd: {"model": {"_orig_mod." + k: v for k, v in sd.items()}},
], ids=["plain", "params_ema", "state_dict+module.", "model+_orig_mod."])
def test_wrappers_and_prefixes_are_canonicalised(tmp_path, wrap):
    sd = _tiny_imdn().state_dict()
    path = tmp_path / "w.pth"
    torch.save(wrap(sd), path)
    assert _equal(load_state_dict(str(path)), sd)


def test_safetensors_file_is_read(tmp_path):
    from safetensors.torch import save_file

    sd = _tiny_imdn().state_dict()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    assert _equal(load_state_dict(str(path)), sd)
    # no suffix: recognised from its header
    bare = tmp_path / "weights_without_suffix"
    bare.write_bytes(path.read_bytes())
    assert _equal(load_state_dict(str(bare)), sd)


def test_pickled_objects_are_refused_without_running_them(tmp_path):
    import pickle

    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(1), "payload": _Payload(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(KdedgeError, match="evil.pth.*pickled Python objects"):
        load_state_dict(str(path))
    assert not marker.exists()
    # the same with a bare pickle (legacy format, not a zip)
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps({"w": _Payload(str(marker))}, protocol=2))
    with pytest.raises(KdedgeError, match="legacy.pth"):
        load_state_dict(str(legacy))
    assert not marker.exists()


@pytest.mark.parametrize("content,message", [
    ([torch.zeros(2)], "not a state dict"),
    (torch.zeros(2), "not a state dict"),
    ({"epoch": 3, "lr": 0.1}, "not a state dict: 2 of its 2 entries are not tensors"),
    ({}, "not a state dict"),
])
def test_a_pth_that_is_not_a_state_dict_is_named(tmp_path, content, message):
    path = tmp_path / "odd.pth"
    torch.save(content, path)
    with pytest.raises(KdedgeError, match="odd.pth") as info:
        load_state_dict(str(path))
    assert message in str(info.value)


def test_unreadable_and_missing_files(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a weights file at all")
    with pytest.raises(KdedgeError, match="junk.pth is not a readable PyTorch weights file"):
        load_state_dict(str(junk))
    with pytest.raises(KdedgeError, match="does not exist"):
        load_state_dict(str(tmp_path / "absent.pth"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(KdedgeError, match="bad.safetensors"):
        load_state_dict(str(bad))


def test_canonicalize_keeps_a_real_module_submodule():
    # only a prefix on *every* key is a wrapper's; a network with a `module` child keeps its names
    sd = {"module.weight": torch.zeros(1), "head.weight": torch.zeros(1)}
    assert set(canonicalize(sd)) == set(sd)


def test_load_model_by_architecture_and_by_file(tmp_path):
    net = _tiny_imdn(scale=3)
    path = tmp_path / "mine.pth"
    torch.save({"params": net.state_dict()}, path)
    for model in (load_model("imdn", weights=str(path)), load_model(str(path))):
        assert (model.arch, model.scale) == ("imdn", 3)
        assert model.model_args == dict(scale=3, nf=16, num_modules=2, in_channels=3, out_channels=3)
        assert model.meta["weights"] == os.path.abspath(path)
        x = torch.rand(1, 3, 8, 8)
        with torch.no_grad():
            assert torch.allclose(model(x), net.eval()(x))


def test_wrong_scale_and_architecture_messages(tmp_path):
    path = tmp_path / "small_x2.pth"
    torch.save(_tiny_imdn(scale=2).state_dict(), path)
    with pytest.raises(KdedgeError, match=r"small_x2.pth holds an x2 IMDN .* x4 was asked for"):
        load_model("imdn", weights=str(path), scale=4)
    with pytest.raises(KdedgeError, match=r"holds an x2 IMDN .*not RLFN weights") as info:
        load_model("rlfn", weights=str(path))
    assert "--model imdn" in info.value.fix


def test_spec_errors(tmp_path):
    with pytest.raises(KdedgeError, match="unknown model"):
        load_model("no_such_model")
    with pytest.raises(KdedgeError, match="unknown architecture 'nope'"):
        load_model("nope", weights=str(tmp_path / "w.pth"))
    with pytest.raises(KdedgeError, match="needs weights"):
        load_model("rlfn")
    with pytest.raises(KdedgeError, match="no such file"):
        load_model(str(tmp_path / "missing.pth"))


def test_unrecognised_state_dict_is_refused(tmp_path):
    path = tmp_path / "mystery.pth"
    torch.save({"a.weight": torch.zeros(3, 3)}, path)
    try:
        import spandrel  # noqa: F401
    except ImportError:
        expected = "spandrel .*cannot be imported"
    else:
        expected = "spandrel does not recognise it either"
    with pytest.raises(KdedgeError, match="mystery.pth is not an IMDN, RLFN or RLFN-S state dict.*" + expected):
        load_model(str(path))


def test_kdedge_checkpoint_is_delegated(tmp_path):
    """A .safetensors whose header marks a kdedge checkpoint goes to kdedge.checkpoint."""
    try:
        from kdedge.checkpoint import save_checkpoint
    except ImportError:
        from safetensors.torch import save_file

        path = tmp_path / "student.safetensors"
        save_file({"w": torch.zeros(1)}, str(path), metadata={"kdedge": "{}"})
        with pytest.raises(KdedgeError, match="kdedge checkpoint, but kdedge.checkpoint cannot be imported"):
            load_model(str(path))
        return
    from kdedge.models import list_models

    students = [n for n in list_models() if n not in ("imdn", "rlfn", "rlfn_s")]
    if not students:
        pytest.skip("no student architecture registered yet")
    name = students[0]
    net = create_model(name, scale=2, color="y")
    path = save_checkpoint(tmp_path / "student.safetensors", net, arch=name, model_args={}, scale=2, color="y")
    model = load_model(str(path))
    assert (model.arch, model.scale, model.color) == (name, 2, "y")
    assert _equal(model.module.state_dict(), net.state_dict())
    with pytest.raises(KdedgeError, match="is x2, but x4 was asked for"):
        load_model(str(path), scale=4)


@pytest.mark.shared
def test_zoo_name_loads_offline_from_a_local_folder(shared_weights, monkeypatch, tmp_path):
    monkeypatch.setenv("KDEDGE_ZOO_DIR", str(shared_weights))
    monkeypatch.setenv("KDEDGE_HOME", str(tmp_path))
    monkeypatch.setenv("KDEDGE_OFFLINE", "1")
    model = load_model("rlfn_s_x2")
    assert (model.arch, model.scale, model.meta["zoo"]) == ("rlfn_s", 2, "rlfn_s_x2")
    assert "bytedance/RLFN" in model.meta["origin"]
    with pytest.raises(KdedgeError, match="zoo model imdn_x2 is x2, but x4 was asked for"):
        load_model("imdn_x2", scale=4)
    # a --weights path stands in for the zoo download, but must be that model
    with pytest.raises(KdedgeError, match="not IMDN weights"):
        load_model("imdn_x2", weights=str(shared_weights / "rlfn_x2.pth"))
    assert not (tmp_path / "weights").exists()  # nothing was downloaded or cached
