"""The trainer: run folder contents, exact resume, clear errors for bad input."""
from __future__ import annotations

import csv

import pytest

torch = pytest.importorskip("torch")

from test_train_utils import make_images, tiny_config  # noqa: E402
from kdedge.checkpoint import load_checkpoint, read_header, save_checkpoint  # noqa: E402
from kdedge.distill.trainer import lr_at, train  # noqa: E402
from kdedge.errors import KdedgeError  # noqa: E402
from kdedge.models import create_model  # noqa: E402


def test_run_folder_contents(tmp_path):
    cfg = tiny_config(tmp_path, student="repanchor", ema=0.9)
    result = train(cfg, command="train")
    run = tmp_path / "run"
    assert result["step"] == 6
    for name in ("config.yaml", "metrics.csv", "curve.png", "last.safetensors", "best.safetensors"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[2]["val_psnr"] and rows[5]["val_psnr"] and not rows[0]["val_psnr"]
    header = read_header(run / "last.safetensors")
    assert header["arch"] == "repanchor" and header["step"] == 6 and header["config"]["ema"] == 0.9
    assert "train_state" in header and "train_state" not in read_header(run / "best.safetensors")
    model = load_checkpoint(run / "best.safetensors")
    assert model.meta["best_metric"] == pytest.approx(result["best_psnr"])
    assert not list(run.glob("*.tmp"))


def test_resume_continues_exactly(tmp_path):
    full = train(tiny_config(tmp_path / "a"), command="train")
    first = train(tiny_config(tmp_path / "b", stop_at=3), command="train")
    assert first["step"] == 3 and read_header(tmp_path / "b" / "run" / "last.safetensors")["step"] == 3
    resumed = train(tiny_config(tmp_path / "b", resume="last"), command="train")
    assert resumed["step"] == 6
    a = load_checkpoint(tmp_path / "a" / "run" / "last.safetensors").module.state_dict()
    b = load_checkpoint(tmp_path / "b" / "run" / "last.safetensors").module.state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert full["val_psnr"] == pytest.approx(resumed["val_psnr"], abs=1e-6)
    rows = list(csv.DictReader(open(tmp_path / "b" / "run" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]


def test_cosine_schedule():
    from kdedge.distill.config import TrainConfig

    c = TrainConfig(steps=100, lr=1e-3, min_lr=1e-5, warmup=10)
    assert lr_at(0, c) == pytest.approx(1e-4)
    assert lr_at(10, c) == pytest.approx(1e-3)
    assert lr_at(100, c) == pytest.approx(1e-5)
    assert lr_at(55, c) == pytest.approx((1e-3 + 1e-5) / 2)


def _teacher(path, scale=2, color="rgb"):
    m = create_model("anchor", scale=scale, color=color, width=4, depth=1)
    save_checkpoint(path, m, arch="anchor", model_args={"width": 4, "depth": 1}, scale=scale, color=color)
    return str(path)


def test_errors_are_clear(tmp_path):
    with pytest.raises(KdedgeError, match="is an x3 model but the student is x2"):
        train(tiny_config(tmp_path / "1", teacher=_teacher(tmp_path / "t3.safetensors", scale=3), kd_weight=1.0))
    with pytest.raises(KdedgeError, match="cannot teach an RGB student"):
        train(tiny_config(tmp_path / "2", color="rgb", teacher=_teacher(tmp_path / "ty.safetensors", color="y"), kd_weight=1.0))
    with pytest.raises(KdedgeError, match="unknown student"):
        train(tiny_config(tmp_path / "3", student="resnet50"))
    with pytest.raises(KdedgeError, match="no usable image|no training images"):
        train(tiny_config(tmp_path / "4", patch=40))  # 48 px images cannot give 80 px HR patches
    with pytest.raises(KdedgeError, match="kd_weight"):
        tiny_config(tmp_path / "5", kd_weight=1.0)  # no teacher
    with pytest.raises(KdedgeError, match="unknown option"):
        tiny_config(tmp_path / "6", widht=8)


def test_resume_incompatible_and_existing_run(tmp_path):
    train(tiny_config(tmp_path, stop_at=3), command="train")
    with pytest.raises(KdedgeError, match="cannot resume"):
        train(tiny_config(tmp_path, resume="last", width=6))
    with pytest.raises(KdedgeError, match="already holds a run"):
        train(tiny_config(tmp_path))
    with pytest.raises(KdedgeError, match="weights only"):
        train(tiny_config(tmp_path, resume=str(tmp_path / "run" / "best.safetensors")))


def test_unwritable_run_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(KdedgeError, match="not writable"):
        train(tiny_config(tmp_path, out=str(blocker / "run")))


def test_cli_train_and_eval_accepts_checkpoint(tmp_path):
    from kdedge.cli import main

    data = make_images(tmp_path / "d", n=3, gray=1)
    rc = main(["train", "--data", str(data), "--student", "anchor", "--width", "4", "--depth", "1", "--patch", "8",
               "--batch", "2", "--steps", "2", "--eval-interval", "2", "--out", str(tmp_path / "r"), "--no-progress",
               "--no-plot", "--val-holdout", "1"])
    assert rc == 0
    ck = tmp_path / "r" / "best.safetensors"
    assert main(["eval", "--model", str(ck), "--data", str(data), "--scale", "2"]) == 0


def test_yaml_config_then_flags(tmp_path):
    import yaml

    from kdedge.cli import main

    data = make_images(tmp_path / "d", n=3)
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump({"data": [str(data)], "student": "anchor", "width": 4, "depth": 1, "patch": 8,
                                    "batch": 2, "steps": 5, "eval_interval": 2, "progress": False, "plot": False,
                                    "out": str(tmp_path / "r")}))
    assert main(["train", "--config", str(conf), "--steps", "2"]) == 0
    header = read_header(tmp_path / "r" / "last.safetensors")
    assert header["step"] == 2 and header["config"]["width"] == 4 and header["config"]["eval_interval"] == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("widht: 4\n")
    assert main(["train", "--config", str(bad)]) == 1


def test_help_lists_every_config_field(capsys):
    import dataclasses

    from kdedge.cli import main
    from kdedge.distill.config import TrainConfig

    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    text = capsys.readouterr().out
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in text
    assert "teacher-output" in text or "teacher" in text


def test_ema_warms_up():
    from kdedge.distill.student import EMA

    m = create_model("anchor", width=4, depth=1)
    init = m.tail.weight.detach().clone()
    ema = EMA(m, decay=0.999)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
    ema.update(m, step=0)  # decay (1 + 0) / (10 + 0) = 0.1: the random init keeps only 10%
    assert torch.allclose(ema.module.tail.weight, 0.1 * init)
    for step in range(1, 200):
        ema.update(m, step)
    assert ema.module.tail.weight.abs().max() < 1e-3 * init.abs().max() + 1e-12
