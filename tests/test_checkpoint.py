"""Checkpoints: round trip through the header, train state, atomic writes, clear errors."""
from __future__ import annotations

import json
import os

import pytest

torch = pytest.importorskip("torch")

from kdedge.checkpoint import load_checkpoint, load_checkpoint_full, read_header, save_checkpoint  # noqa: E402
from kdedge.errors import KdedgeError  # noqa: E402
from kdedge.models import create_model  # noqa: E402


def _save(path, arch="repanchor", **kw):
    torch.manual_seed(1)
    args = dict(width=8, depth=1)
    m = create_model(arch, scale=3, color="rgb", **args)
    save_checkpoint(path, m, arch=arch, model_args=args, scale=3, color="rgb", step=7, best_metric=30.5,
                    teacher={"spec": "imdn"}, config={"lr": 1e-3}, **kw)
    return m


def test_round_trip_rebuilds_model_from_header(tmp_path):
    path = tmp_path / "a.safetensors"
    m = _save(path)
    loaded = load_checkpoint(path)
    assert (loaded.arch, loaded.scale, loaded.color, loaded.in_channels) == ("repanchor", 3, "rgb", 3)
    assert loaded.meta["step"] == 7 and loaded.meta["teacher"] == {"spec": "imdn"}
    x = torch.rand(1, 3, 9, 10)
    with torch.no_grad():
        assert torch.equal(loaded(x), m.eval()(x))
    header = read_header(path)
    assert header["model_args"] == {"width": 8, "depth": 1, "scale": 3, "color": "rgb"}
    assert header["config"] == {"lr": 1e-3} and header["kdedge_version"]
    assert not list(tmp_path.glob("*.tmp")), "temporary file left behind"


def test_train_state_round_trip(tmp_path):
    m = create_model("anchor", width=4, depth=1)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    m(torch.rand(2, 1, 8, 8)).mean().backward()
    opt.step()
    state = {"optimizer": opt.state_dict(), "rng": torch.get_rng_state(), "step": 3, "names": ("a", "b")}
    path = tmp_path / "s.safetensors"
    save_checkpoint(path, m, arch="anchor", model_args={"width": 4, "depth": 1}, scale=2, color="y", train_state=state)
    _, _, back = load_checkpoint_full(path)
    opt2 = torch.optim.AdamW(m.parameters(), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])
    for k, v in opt.state_dict()["state"][0].items():
        assert torch.equal(v, opt2.state_dict()["state"][0][k])
    assert opt2.state_dict()["param_groups"][0]["lr"] == 1e-3
    assert torch.equal(back["rng"], state["rng"]) and back["step"] == 3 and back["names"] == ("a", "b")
    # The deployable part still loads alone (export and eval never see the train state).
    assert load_checkpoint(path).arch == "anchor"


def test_missing_truncated_and_foreign_files(tmp_path):
    with pytest.raises(KdedgeError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")
    path = tmp_path / "a.safetensors"
    _save(path)
    data = path.read_bytes()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(KdedgeError, match="unreadable or truncated"):
        load_checkpoint(bad)
    from safetensors.torch import save_file

    foreign = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(KdedgeError, match="without a kdedge header"):
        load_checkpoint(foreign)


def test_unknown_architecture(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "u.safetensors"
    header = {"format": "kdedge-checkpoint/1", "arch": "no_such_net", "model_args": {}, "scale": 2, "color": "y"}
    save_file({"w": torch.zeros(1)}, str(path), metadata={"kdedge": json.dumps(header)})
    with pytest.raises(KdedgeError, match="no_such_net"):
        load_checkpoint(path)


def test_unwritable_folder(tmp_path):
    if os.geteuid() == 0:
        target = "/proc/kdedge_cannot_write_here/x.safetensors"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = str(ro / "x.safetensors")
    with pytest.raises(KdedgeError, match="cannot write"):
        _save(target)
