"""kdedge upscale, bench and doctor: the torch-free commands, through the real CLI entry point."""
from __future__ import annotations

import json

import numpy as np
import pytest

from kdedge.cli import main
from kdedge.runtime import doctor
from kdedge.runtime.sources import open_source
from kdedge.runtime.uri import gstreamer_available

try:
    from test_runtime_helpers import make_bundle
except ImportError:
    from tests.test_runtime_helpers import make_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("cli") / "b")


def test_upscale_image_and_folder(bundle, tmp_path, capsys):
    import cv2

    src = open_source("test://?size=36x20&fps=0")
    cv2.imwrite(str(tmp_path / "a.png"), src.frame(0))
    assert main(["upscale", str(tmp_path / "a.png"), str(tmp_path / "a_x2.png"), "--model", str(bundle), "--no-progress"]) == 0
    assert cv2.imread(str(tmp_path / "a_x2.png")).shape == (40, 72, 3)
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / ("f%d.jpg" % i)), src.frame(i))
    assert main(["upscale", str(folder), str(tmp_path / "out"), "--model", str(bundle)]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f0.png", "f1.png", "f2.png"]
    assert "3 frame(s)" in capsys.readouterr().out
    assert main(["upscale", str(folder), "--model", str(bundle)]) == 2  # a missing argument: usage error
    assert main(["upscale", "test://", str(tmp_path / "x.mp4"), "--model", str(bundle)]) == 1


def test_bench_json(bundle, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", str(bundle), "--backend", "ort-cpu", "--size", "24x16", "--size", "40x24",  # WxH
                 "--runs", "3", "--warmup", "1", "--threads", "1", "--json", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == result
    assert [r["size_hw"] for r in result["rows"]] == [[16, 24], [24, 40]]
    for row in result["rows"]:
        assert row["precision"] == "fp32" and row["model_ms"]["median"] > 0 and row["e2e_fps"] > 0
        assert row["model_ms"]["p10"] <= row["model_ms"]["median"] <= row["model_ms"]["p90"]
    assert [b["size_hw"] for b in result["bicubic"]] == [[16, 24], [24, 40]]
    assert main(["bench", str(bundle), "--size", "big"]) == 2  # a bad option value: usage error


def test_doctor(capsys, tmp_path):
    status = main(["doctor", "--json"])
    checks = json.loads(capsys.readouterr().out)
    names = {c["name"] for c in checks}
    assert {"python", "jetson", "tensorrt", "pycuda", "onnxruntime", "opencv", "gstreamer", "cameras", "backend"} <= names
    assert all(c["status"] in ("ok", "warn", "fail", "info") for c in checks)
    assert all(c["fix"] for c in checks if c["status"] in ("warn", "fail"))
    assert status == (1 if any(c["status"] == "fail" for c in checks) else 0)
    gst = [c for c in checks if c["name"] == "gstreamer"][0]
    assert (gst["status"] == "ok") == gstreamer_available()


def test_tegra_release_parsing(tmp_path):
    text = "# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref, EABI: aarch64, DATE: Sun Mar 19 15:19:21 UTC 2023\n"
    assert doctor.parse_tegra_release(text) == {"l4t": "35.3.1", "jetpack": "5"}
    assert doctor.parse_tegra_release("# R36 (release), REVISION: 4.0, GCID: 1")["jetpack"] == "6"
    f = tmp_path / "nv_tegra_release"
    f.write_text(text)
    c = doctor.check_jetson(str(f))
    assert c["status"] == "ok" and "JetPack 5" in c["detail"]
    assert doctor.check_jetson(str(tmp_path / "absent"))["status"] == "info"


def test_doctor_jetpack_table_and_tensorrt_11():
    from kdedge.runtime import doctor

    assert doctor.parse_tegra_release("# R38 (release), REVISION: 2.1, GCID: 4")== {"l4t": "38.2.1", "jetpack": "7"}
    assert [doctor.jetpack_for_l4t(m) for m in (32, 35, 36, 38)] == ["4", "5", "6", "7"]
    assert doctor.jetpack_for_l4t(40).startswith("newer than") and doctor.jetpack_for_l4t(33) == "unknown"
    # TensorRT 11 on a Jetson only from JetPack 7.2.2 (NVIDIA's TensorRT 11.4.1 Jetson migration page)
    for jp in ("5", "6", "5 (developer preview)"):
        msg = doctor.trt_jetpack_problem("11.4.1.2", jp)
        assert msg and "7.2.2" in msg
    assert doctor.trt_jetpack_problem("10.3.0.26", "6") is None
    assert doctor.trt_jetpack_problem("11.4.1.2", "7") is None  # 7.x minor is not readable from L4T here
    assert "7.2.2" in doctor.JP_TRT_FIX["7"]


def test_doctor_sees_a_pip_opencv_wherever_pip_put_it():
    from kdedge.runtime import doctor

    assert doctor.opencv_origin("/usr/local/lib/python3.8/dist-packages/cv2", []) == "pip"  # sudo pip on Ubuntu
    assert doctor.opencv_origin("/home/u/venv/lib/python3.10/site-packages/cv2", []) == "pip"
    assert doctor.opencv_origin("/usr/lib/python3.8/dist-packages/cv2", []) == "system"  # JetPack's apt build
    assert doctor.opencv_origin("/usr/lib/python3.8/dist-packages/cv2", ["opencv-python"]) == "pip"


def test_engine_flags_are_one_group(bundle, tmp_path, capsys):
    """camera, upscale and bench take the engine flags from one definition: same help, same checks."""
    import argparse

    from kdedge import camera
    from kdedge.cli import bench, upscale

    def actions(add):
        parser = argparse.ArgumentParser()
        add(parser)
        return {a.dest: a for a in parser._actions}

    cam, up, ben = actions(camera.add_arguments), actions(upscale.add_arguments), actions(bench.add_arguments)
    for dest in ("model", "backend", "precision", "threads", "workers", "frame_graph", "tile"):
        assert (cam[dest].help, cam[dest].choices, cam[dest].default) == (up[dest].help, up[dest].choices, up[dest].default)
    for dest in ("threads", "workers"):
        assert ben[dest].help == cam[dest].help
    assert ben["backend"].default is None and ben["frame_graph"].choices == ("off", "on", "both") and "tile" not in ben
    for argv in (["upscale", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--model", str(bundle), "--workers", "0"],
                 ["bench", str(bundle), "--threads", "0"]):
        assert main(argv) == 2  # a usage error, named, before any file is read
        assert "must be at least 1, got 0" in capsys.readouterr().err
    assert main(["upscale", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--model", str(bundle), "--tile", "-1"]) == 2
    assert "--tile must be 0 or positive" in capsys.readouterr().err
