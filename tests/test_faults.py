"""Bad inputs and faults (issue 13): every case exits with the right status, names the file, prints
no traceback, and destroys or half-writes nothing.

Most cases call `kdedge.cli.main` / `kdedge.camera.main` in-process (what the console scripts run);
signals, stalled sources and closed pipes need a real process. Read-only and full disks are real
small filesystems (tmpfs, mounted when this process may mount; skipped with the reason otherwise).
"""
from __future__ import annotations

import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from test_runtime_helpers import make_bundle

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from kdedge.errors import KdedgeError  # noqa: E402

# --------------------------------------------------------------------------- fixtures


def _mount_tmpfs(where: Path, size: str, read_only: bool = False) -> None:
    where.mkdir(parents=True, exist_ok=True)
    opts = "size=%s%s" % (size, ",ro" if read_only else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (%s): the disk-full / read-only cases need a real small "
                    "filesystem" % (r.stderr.strip() or "mount failed"))


def _umount(where: Path) -> None:
    subprocess.run(["umount", str(where)], capture_output=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Inputs: a 41-frame clip, an image, an image folder, broken model files, a tiny bundle."""
    import cv2

    from kdedge.runtime.sources import open_source

    root = tmp_path_factory.mktemp("faults")
    src = open_source("test://?size=64x48&fps=0")
    w = cv2.VideoWriter(str(root / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48))
    for i in range(41):
        w.write(src.frame(i))
    w.release()
    (root / "frames").mkdir()
    for i in range(3):
        cv2.imwrite(str(root / "frames" / ("f%d.png" % i)), src.frame(i))
    cv2.imwrite(str(root / "baby.png"), src.frame(7))
    (root / "set").mkdir()
    cv2.imwrite(str(root / "set" / "a.png"), open_source("test://?size=96x64&fps=0").frame(3))
    (root / "garbage.onnx").write_bytes(os.urandom(300))
    (root / "empty.onnx").write_bytes(b"")
    (root / "random.pth").write_bytes(os.urandom(300))
    (root / "notabundle").mkdir()
    os.symlink(str(root / "clip.mp4"), str(root / "link.mp4"))
    make_bundle(root / "bundle")
    return root


@pytest.fixture(scope="module")
def ro(tmp_path_factory):
    """A read-only folder: a read-only tmpfs (root ignores permission bits), else chmod 0555."""
    where = tmp_path_factory.mktemp("ro")
    if os.geteuid() == 0:
        _mount_tmpfs(where, "64k", read_only=True)
        yield where
        _umount(where)
    else:
        os.chmod(str(where), 0o555)
        yield where
        os.chmod(str(where), 0o755)


@pytest.fixture
def full(tmp_path):
    """A fresh 96 KiB tmpfs: what fills it up is the case."""
    where = tmp_path / "full"
    _mount_tmpfs(where, "96k")
    yield where
    _umount(where)


def _hashes(root: Path):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def _run(argv, capsys):
    from kdedge.camera import main as camera_main
    from kdedge.cli import main

    if argv[0] == "camera":
        rc = camera_main(argv[1:])
    else:
        rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _no_partial(*folders):
    for folder in folders:
        if Path(folder).is_dir():
            left = [n for n in os.listdir(str(folder)) if "partial" in n or n.endswith(".tmp")]
            assert not left, "half-written files left: %s" % left


# --------------------------------------------------------------------------- the table

RUNTIME = ["--model", "{bundle}", "--backend", "ort-cpu"]
CASES = [
    # id, argv ({name} = a fixture path), exit status, text the message must hold
    ("upscale-video-onto-itself", ["upscale", "{clip.mp4}", "{clip.mp4}"] + RUNTIME, 1, "clip.mp4 is also the input"),
    ("upscale-folder-into-itself", ["upscale", "{frames}", "{frames}"] + RUNTIME, 1, "frames is also the input"),
    ("upscale-folder-into-itself-slash", ["upscale", "{frames}/", "{frames}/"] + RUNTIME, 1, "frames is also the input"),
    ("upscale-image-onto-itself", ["upscale", "{baby.png}", "{baby.png}"] + RUNTIME, 1, "baby.png is also the input"),
    ("upscale-onto-a-symlink-of-the-input", ["upscale", "{clip.mp4}", "{link.mp4}"] + RUNTIME, 1, "is also the input"),
    ("upscale-file-uri-onto-itself", ["upscale", "{clip.mp4}", "file://{clip.mp4}"] + RUNTIME, 1, "is also the input"),
    ("camera-onto-its-input", ["camera", "--input", "{clip.mp4}", "--output", "{clip.mp4}"] + RUNTIME, 1, "clip.mp4 is also the input"),
    ("stats-json-onto-the-input", ["upscale", "{clip.mp4}", "{tmp}/o.mp4", "--stats-json", "{clip.mp4}"] + RUNTIME, 1,
     "clip.mp4 is also the input"),
    ("upscale-image-into-read-only", ["upscale", "{baby.png}", "{ro}/baby.png"] + RUNTIME, 1, "{ro}"),
    ("upscale-folder-into-read-only", ["upscale", "{frames}", "{ro}/out/"] + RUNTIME, 1, "{ro}/out"),
    ("camera-video-into-read-only", ["camera", "--input", "{clip.mp4}", "--output", "{ro}/x.mp4"] + RUNTIME, 1, "{ro}"),
    ("camera-stats-json-read-only", ["camera", "--input", "{clip.mp4}", "--output", "null://", "--stats-json",
                                     "{ro}/s.json"] + RUNTIME, 1, "{ro}"),
    ("upscale-stats-json-read-only", ["upscale", "{clip.mp4}", "{tmp}/o2.mp4", "--stats-json", "{ro}/s.json"] + RUNTIME, 1, "{ro}"),
    ("upscale-into-missing-folder", ["upscale", "{clip.mp4}", "{tmp}/no/such/o.mp4"] + RUNTIME, 1, "no/such"),
    ("bench-out-read-only", ["bench", "{bundle}", "--out", "{ro}/b.json", "--runs", "2", "--warmup", "0"], 1, "{ro}"),
    ("bench-size-0x0", ["bench", "{bundle}", "--size", "0x0"], 2, "0x0"),
    ("bench-size-huge", ["bench", "{bundle}", "--size", "1x99999"], 2, "1x99999"),
    ("bench-workers-0", ["bench", "{bundle}", "--workers", "0"], 2, "--workers"),
    ("eval-crops-read-only", ["eval", "--model", "{bundle}", "--data", "{set}", "--crops", "{ro}/crops"], 1, "{ro}/crops"),
    ("eval-crops-into-the-data", ["eval", "--model", "{bundle}", "--data", "{set}", "--crops", "{set}"], 1, "set"),
    ("eval-garbage-onnx", ["eval", "--model", "{garbage.onnx}", "--scale", "2", "--data", "{set}"], 1, "garbage.onnx"),
    ("eval-empty-onnx", ["eval", "--model", "{empty.onnx}", "--scale", "2", "--data", "{set}"], 1, "empty.onnx"),
    ("eval-folder-without-manifest", ["eval", "--model", "{notabundle}", "--data", "{set}"], 1, "notabundle"),
    ("eval-shipped-bundle-by-name", ["eval", "--model", "fast", "--data", "{set}"], 0, "mean"),
    ("camera-frames-0", ["camera", "--frames", "0", "--output", "null://"] + RUNTIME, 2, "--frames"),
    ("camera-tile-negative", ["camera", "--tile", "-1", "--output", "null://"] + RUNTIME, 2, "--tile"),
    ("camera-source-timeout-negative", ["camera", "--source-timeout", "-1", "--output", "null://"] + RUNTIME, 2, "--source-timeout"),
    ("camera-missing-input", ["camera", "--input", "{tmp}/nosuch.mp4", "--output", "null://"] + RUNTIME, 1, "nosuch.mp4"),
    ("camera-bad-test-uri", ["camera", "--input", "test://?size=abc", "--output", "null://"] + RUNTIME, 1, "abc"),
    ("upscale-no-output", ["upscale", "{clip.mp4}"] + RUNTIME, 2, "give an input and an output"),
    ("upscale-live-input", ["upscale", "test://", "{tmp}/o3.mp4"] + RUNTIME, 1, "test://"),
    ("upscale-unknown-output-kind", ["upscale", "{clip.mp4}", "{tmp}/o.xyz"] + RUNTIME, 1, "o.xyz"),
]
TORCH_CASES = [
    ("eval-random-bytes-pth", ["eval", "--model", "imdn", "--weights", "{random.pth}", "--data", "{set}", "--scale", "2"], 1,
     "not a readable PyTorch weights file"),
    ("distill-resume-from-pth", ["distill", "--resume", "{random.pth}", "--out", "{tmp}/r1"], 1, "random.pth is not a kdedge checkpoint"),
    ("export-over-its-own-checkpoint-folder", ["export", "{tmp}/run/best.safetensors", "--out", "{tmp}/run", "--overwrite"], 1,
     "holds the input"),
    ("export-into-read-only", ["export", "{student}", "--out", "{ro}/b"], 1, "{ro}"),
    ("export-calib-missing", ["export", "{student}", "--int8", "--calib", "{tmp}/nocalib", "--out", "{tmp}/b9"], 1, "nocalib"),
]


def _fill(argv, files, ro, tmp):
    from kdedge.distill.inputs import ASSETS

    names = {"bundle": files / "bundle", "ro": ro, "tmp": tmp, "student": ASSETS / "student_x2.safetensors"}
    out = []
    for a in argv:
        for key, value in names.items():
            a = a.replace("{%s}" % key, str(value))
        if a.startswith("{") or "{" in a:
            import re

            a = re.sub(r"\{([^}]+)\}", lambda m: str(files / m.group(1)), a)
        out.append(a)
    return out


def _check_case(argv, status, needle, files, ro, tmp, capsys):
    before = _hashes(files)
    rc, out, err = _run(_fill(argv, files, ro, tmp), capsys)
    text = out + err
    assert rc == status, text
    assert "Traceback" not in text
    assert _fill([needle], files, ro, tmp)[0] in text, text
    assert _hashes(files) == before, "an input was changed"
    _no_partial(files, files / "frames", tmp)
    return text


@pytest.mark.parametrize("argv,status,needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(argv, status, needle, files, ro, tmp_path, capsys):
    _check_case(argv, status, needle, files, ro, tmp_path, capsys)


@pytest.mark.parametrize("argv,status,needle", [c[1:] for c in TORCH_CASES], ids=[c[0] for c in TORCH_CASES])
def test_bad_input_torch(argv, status, needle, files, ro, tmp_path, capsys):
    pytest.importorskip("torch")
    from kdedge.distill.inputs import ASSETS

    run = tmp_path / "run"
    run.mkdir()
    (run / "best.safetensors").write_bytes((ASSETS / "student_x2.safetensors").read_bytes())
    before = _hashes(run)
    _check_case(argv, status, needle, files, ro, tmp_path, capsys)
    assert _hashes(run) == before


def test_yaml_fraction_for_an_integer_is_refused(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("steps: 10.5\n")
    rc, out, err = _run(["distill", "--config", str(cfg), "--out", str(tmp_path / "r")], capsys)
    assert rc == 1 and str(cfg) in err and "whole number" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_too_small_images_say_lower_patch_and_leave_no_run_folder(tmp_path, capsys):
    pytest.importorskip("torch")
    from test_train_utils import make_images

    data = make_images(tmp_path / "small", n=2, size=16)
    run = tmp_path / "run"
    rc, out, err = _run(["distill", "--teacher", "", "--kd-weight", "0", "--no-hr-as-lr", "--unlabeled-ratio", "0",
                         "--data", str(data), "--patch", "48",
                         "--out", str(run), "--no-progress"], capsys)
    assert rc == 1 and str(data) in err and "lower --patch" in err and "Traceback" not in err
    assert not run.exists()  # no folder holding only config.yaml


# --------------------------------------------------------------------------- writes that fail mid-run


def test_write_error_on_the_last_frame_is_not_lost(files, tmp_path, capsys, monkeypatch):
    """Case 4: the only frame's write fails after the source has ended: exit 1, the file named."""
    from kdedge.runtime.sinks import ImageSink

    def fail(self, frame):
        raise PermissionError(13, "Permission denied", str(tmp_path / "o.png"))

    monkeypatch.setattr(ImageSink, "write", fail)
    rc, out, err = _run(["upscale", str(files / "baby.png"), str(tmp_path / "o.png")] + _fill(RUNTIME, files, tmp_path, tmp_path), capsys)
    assert rc == 1 and "permission denied: %s" % (tmp_path / "o.png") in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_video_that_does_not_read_back_is_removed(files, tmp_path, capsys, monkeypatch):
    """The close-time check: a finished file that reads back short is removed, the run fails."""
    from kdedge.runtime.sinks import VideoFileSink

    monkeypatch.setattr(VideoFileSink, "_frames_in", lambda self, path: 0)
    rc, out, err = _run(["upscale", str(files / "clip.mp4"), str(tmp_path / "o.mp4")] + _fill(RUNTIME, files, tmp_path, tmp_path), capsys)
    assert rc == 1 and "finishing %s failed" % (tmp_path / "o.mp4") in err and "no frame" in err
    assert os.listdir(str(tmp_path)) == []


def test_disk_full_video_camera(files, full, capsys):
    """Case 1: the camera into a full disk: exit 1, 'no space', no unplayable file, no .partial."""
    rc, out, err = _run(["camera", "--input", "test://?size=160x120&fps=0&frames=120", "--output", str(full / "out.mp4"),
                         "--quiet"] + _fill(RUNTIME, files, full, full), capsys)
    assert rc == 1 and "no space left" in err and str(full / "out.mp4") in err and "Traceback" not in err
    assert "no frame of" in err  # how many frames are safe: none, for a video that could not be finished
    assert os.listdir(str(full)) == []


def test_disk_full_video_upscale(files, full, tmp_path, capsys):
    """Case 1 through `kdedge upscale`: a clip whose result is bigger than the disk."""
    import cv2

    from kdedge.runtime.sources import open_source

    src = open_source("test://?size=160x120&fps=0")
    clip = tmp_path / "big.avi"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (160, 120))
    for i in range(40):
        w.write(src.frame(i))
    w.release()
    rc, out, err = _run(["upscale", str(clip), str(full / "big_x2.avi"), "--no-progress"] + _fill(RUNTIME, files, full, full), capsys)
    assert rc == 1 and "no space left" in err and str(full / "big_x2.avi") in err and "Traceback" not in err
    assert os.listdir(str(full)) == []


def test_disk_full_image_folder_keeps_complete_images(files, full, capsys):
    rc, out, err = _run(["camera", "--input", "test://?size=64x48&fps=0&frames=60", "--output", str(full / "fr") + "/",
                         "--quiet"] + _fill(RUNTIME, files, full, full), capsys)
    assert rc == 1 and "no space left" in err and "Traceback" not in err
    import cv2

    names = sorted(os.listdir(str(full / "fr")))
    assert names and all(n.startswith("frame_") for n in names)  # no .partial
    assert "%d image(s)" % len(names) in err  # the message says how many are safe
    for n in names:
        assert cv2.imread(str(full / "fr" / n)) is not None  # each one complete


def test_disk_full_distill_checkpoint(full, tmp_path, capsys):
    pytest.importorskip("torch")
    from test_train_utils import make_images

    data = make_images(tmp_path / "data", n=3, size=32)
    rc, out, err = _run(["distill", "--teacher", "", "--kd-weight", "0", "--no-hr-as-lr", "--unlabeled-ratio", "0",
                         "--data", str(data), "--student", "anchor", "--width", "32", "--depth", "3", "--patch", "8",
                         "--batch", "2", "--steps", "2", "--eval-interval", "2", "--val-holdout", "1", "--threads", "1",
                         "--no-progress", "--no-plot", "--out", str(full / "run")], capsys)
    # 96 KiB holds config.yaml and metrics.csv but not the checkpoint (~60k parameters + Adam state)
    assert rc == 1 and "no space left" in err and str(full / "run") in err and "--resume" in err and "Traceback" not in err
    assert not [n for n in os.listdir(str(full / "run")) if n.endswith(".tmp")]


def test_disk_full_export(full, capsys):
    pytest.importorskip("torch")
    from kdedge.distill.inputs import ASSETS

    rc, out, err = _run(["export", str(ASSETS / "student_x2.safetensors"), "--no-fp16", "--out", str(full / "b")], capsys)
    if rc == 0:
        pytest.skip("the FP32 bundle fit into the small disk")
    assert rc == 1 and "no space left" in err and str(full) in err and "Traceback" not in err
    assert os.listdir(str(full)) == []  # neither the bundle nor its temp folder


# --------------------------------------------------------------------------- leftovers of killed exports


def test_stale_export_leftovers_are_cleaned(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    import tempfile

    from kdedge.export import staging

    scratch = tmp_path / "sys_tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(scratch))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = os.getpid()
    made = {
        "dead_sibling": tmp_path / (".b.tmp-%d-abc" % dead.pid),
        "live_sibling": tmp_path / (".b.tmp-%d-def" % live),
        "old_format_old": tmp_path / ".b.tmp-zzz",
        "old_format_new": tmp_path / ".b.tmp-yyy",
        "dead_work": scratch / ("kdedge-export-%d-x" % dead.pid),
        "live_work": scratch / ("kdedge-export-%d-y" % live),
        "other_bundle": tmp_path / (".c.tmp-%d-abc" % dead.pid),
    }
    for p in made.values():
        p.mkdir()
        (p / "model.onnx").write_bytes(b"x")
    old = time.time() - 7 * 3600
    os.utime(str(made["old_format_old"]), (old, old))
    moved = tmp_path / (".b.old-%d" % dead.pid)  # a killed --overwrite had moved the old bundle aside
    moved.mkdir()
    (moved / "manifest.json").write_text("{}")
    removed = staging.clean_stale(tmp_path, "b", log=lambda m: None)
    gone = {k for k, p in made.items() if not p.exists()}
    assert gone == {"dead_sibling", "old_format_old", "dead_work"}
    assert sorted(removed) == sorted(str(made[k]) for k in gone)
    assert (tmp_path / "b" / "manifest.json").is_file() and not moved.exists()  # restored, not deleted


# --------------------------------------------------------------------------- signals, stalls, pipes (processes)


def _popen(args, **kw):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


def _wait_for(pred, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline and not pred():
        time.sleep(0.05)
    return pred()


@pytest.mark.slow
def test_sigterm_to_upscale_exits_143_and_keeps_a_playable_file(files, tmp_path):
    """Case 5: SIGTERM mid-video: 143, the interruption said, the frames done finished and playable."""
    import cv2

    from kdedge.runtime.sources import open_source

    src = open_source("test://?size=320x240&fps=0")
    clip = tmp_path / "long.avi"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 240))
    for i in range(600):
        w.write(src.frame(i))
    w.release()
    out = tmp_path / "long_x2.avi"
    proc = _popen(["-m", "kdedge", "upscale", str(clip), str(out), "--no-progress", "--threads", "1"] + _fill(RUNTIME, files, tmp_path, tmp_path))
    assert _wait_for(lambda: (tmp_path / ".long_x2.partial.avi").exists())
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr and str(out) in stderr and "of 600" in stderr and "Traceback" not in stderr
    cap = cv2.VideoCapture(str(out))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert 0 < n < 600 and ("holds %d frame(s)" % n) in stderr
    _no_partial(tmp_path)


@pytest.mark.slow
def test_stalled_source_honours_source_timeout(files, tmp_path):
    """Case 3: a source stuck for 20 s with --source-timeout 2 ends in a few seconds, output finished."""
    out = tmp_path / "o.mp4"
    t0 = time.time()
    proc = _popen(["-m", "kdedge.camera", "--input", "test://?size=64x64&hang_at=5&hang_s=20", "--source-timeout", "2",
                   "--output", str(out), "--quiet"] + _fill(RUNTIME, files, tmp_path, tmp_path))
    _, stderr = proc.communicate(timeout=60)
    took = time.time() - t0
    assert proc.returncode == 1 and "delivered no frame for 2 s" in stderr and "Traceback" not in stderr
    assert took < 12, took
    import re

    import cv2

    m = re.search(r"%s is finished and holds (\d+) frame\(s\)" % re.escape(str(out)), stderr)
    assert m, stderr  # frames kept when the source died: every one processed (a live source may drop one)
    cap = cv2.VideoCapture(str(out))
    assert 1 <= int(m.group(1)) == int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) <= 5
    cap.release()
    _no_partial(tmp_path)


@pytest.mark.slow
def test_stalled_source_honours_sigterm(files, tmp_path):
    """Case 3: a source that never returns (no timeout) still stops on SIGTERM, with 143."""
    out = tmp_path / "o.mp4"
    proc = _popen(["-m", "kdedge.camera", "--input", "test://?size=64x64&hang_at=5&hang_s=600", "--source-timeout", "0",
                   "--output", str(out)] + _fill(RUNTIME, files, tmp_path, tmp_path))
    assert _wait_for(lambda: (tmp_path / ".o.partial.mp4").exists())
    time.sleep(1.0)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143 and time.time() - t0 < 6 and "Traceback" not in stderr
    assert out.is_file()
    _no_partial(tmp_path)


@pytest.mark.slow
def test_sigterm_to_distill_saves_a_checkpoint_and_loses_no_step(tmp_path):
    """Case 8: SIGTERM between evaluations: the step in progress finishes, last.safetensors is saved
    at that step (0 steps lost), exit 143, and --resume continues from it."""
    pytest.importorskip("torch")
    from test_train_utils import make_images

    from kdedge.checkpoint import read_header

    data = make_images(tmp_path / "data", n=3, size=32)
    run = tmp_path / "run"
    proc = _popen(["-m", "kdedge", "distill", "--teacher", "", "--kd-weight", "0", "--no-hr-as-lr", "--unlabeled-ratio", "0",
                   "--data", str(data), "--student", "anchor", "--width", "4", "--depth", "1", "--patch", "8", "--batch", "2",
                   "--steps", "100000", "--eval-interval", "100000", "--log-interval", "1", "--val-holdout", "1",
                   "--threads", "1", "--no-progress", "--no-plot", "--out", str(run)])
    metrics = run / "metrics.csv"
    # header + 21 rows: at least step 21 is logged, so the `> 20` below holds even when SIGTERM lands between steps
    assert _wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) > 21, 120)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-2000:]
    step = read_header(run / "last.safetensors")["step"]
    last_logged = int(list(csv.DictReader(open(str(metrics))))[-1]["step"])
    assert step == last_logged > 20  # every step taken is in the checkpoint
    assert "stopped after step %d" % step in stdout
    r = subprocess.run([sys.executable, "-m", "kdedge", "distill", "--resume", "--out", str(run), "--stop-at", str(step + 3),
                        "--no-progress"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert read_header(run / "last.safetensors")["step"] == step + 3


def test_closed_stdout_pipe_is_quiet(files):
    """`kdedge eval ... --json | head`: the reader is gone before the result is printed: 141, no traceback."""
    r, w = os.pipe()
    os.close(r)  # the reader has already gone
    proc = subprocess.run([sys.executable, "-m", "kdedge", "eval", "--model", "bicubic", "--scale", "2",
                           "--data", str(files / "set"), "--json"], stdout=w, stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(w)
    assert proc.returncode == 141 and "Traceback" not in proc.stderr and "stdout" in proc.stderr


# --------------------------------------------------------------------------- random inputs (hypothesis)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.text(max_size=40))
def test_any_uri_string_parses_or_is_a_kdedge_error(s):
    from kdedge.runtime.uri import parse_uri

    try:
        uri = parse_uri(s)
    except KdedgeError:
        return
    assert uri.scheme in ("csi", "v4l2", "rtsp", "file", "test", "display", "null")


@FAST
@given(st.text(alphabet="0123456789x&=?sizefpramehng_t", max_size=30))
def test_any_test_uri_query_opens_or_is_a_kdedge_error(q):
    from kdedge.runtime.sources import open_source

    try:
        src = open_source("test://?" + q)
    except KdedgeError:
        return
    assert src.width >= 0 and src.height >= 0


@FAST
@given(st.text(max_size=12))
def test_any_bench_size_is_a_size_or_a_usage_error(s):
    from kdedge.cli.bench import _sizes
    from kdedge.errors import UsageError

    try:
        (h, w), = _sizes([s])
    except UsageError as exc:
        assert repr(s) in exc.message
        return
    assert 0 < h <= 8192 and 0 < w <= 8192


_yaml_values = st.one_of(st.none(), st.booleans(), st.integers(-10, 10 ** 6), st.floats(allow_nan=True),
                         st.text(max_size=10), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@FAST
@given(st.dictionaries(st.sampled_from(["steps", "patch", "batch", "lr", "student", "scale", "amp", "data", "nope"]),
                       _yaml_values, max_size=4))
def test_any_yaml_config_loads_or_is_an_error_naming_the_file(tmp_path_factory, values):
    import argparse

    import yaml

    from kdedge.cli._common import add_config_argument, load_config_file

    parser = argparse.ArgumentParser()
    add_config_argument(parser)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--patch", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--student", choices=("anchor", "espcn"))
    parser.add_argument("--scale", type=int, choices=(2, 3, 4))
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--data", nargs="+")
    path = tmp_path_factory.mktemp("yaml") / "c.yaml"
    path.write_text(yaml.safe_dump(values))
    try:
        loaded = load_config_file(str(path), parser)
    except KdedgeError as exc:
        assert str(path) in exc.message
        return
    for key in ("steps", "patch", "batch"):
        if loaded.get(key) is not None and not isinstance(loaded[key], (list, bool)):
            assert loaded[key] == values[key]  # never silently rounded


@FAST
@given(st.lists(st.sampled_from(["a", "b", ".", "..", "c.mp4"]), min_size=1, max_size=4))
def test_an_output_equal_to_its_input_is_always_refused(tmp_path_factory, parts):
    from kdedge.paths import check_output

    root = tmp_path_factory.mktemp("paths")
    path = os.path.join(str(root), *parts)
    spelled = os.path.join(str(root), *parts) + ("/" if not parts[-1].endswith(".mp4") else "")
    with pytest.raises(KdedgeError):
        check_output(spelled, [path])
    check_output(path + "_x2", [path])  # a different name is fine
