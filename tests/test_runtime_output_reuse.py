"""The output-buffer contract (runtime/backends/base.py): `Backend.infer()` returns arrays the caller owns.

TensorRT's backend returns its pinned host buffers, which the next inference overwrites. These tests
run the REAL `Pipeline` (capture thread, SR thread(s), writer thread merging colour later) with a
backend that does exactly that (ONNX Runtime underneath, its result copied into one output array
that is reused for every call, as `TrtBackend.infer_impl` does) and compare the written files with
those of the plain ONNX Runtime backend, which returns fresh arrays. Without the copy that
`reuses_outputs = True` triggers in `Backend.infer`, most frames are written from a later frame's
output (checked once by reverting base.py: 1 worker, 2 workers and tiling all failed).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from kdedge.runtime.backends import create_backend
from kdedge.runtime.backends.base import Backend
from kdedge.runtime.backends.ort import OrtBackend
from kdedge.runtime.backends.trt import TrtBackend
from kdedge.runtime.bundle import load_bundle
from kdedge.runtime.pipeline import Pipeline, PipelineOptions

try:
    from test_runtime_helpers import make_bundle
except ImportError:
    from tests.test_runtime_helpers import make_bundle

FRAMES = 24


class ReusingOrtBackend(OrtBackend):
    """ONNX Runtime, but every output is copied into one buffer per output name that the next call
    overwrites: the ownership TensorRT's pinned host buffers have. (A stand-in for the buffer
    behaviour only; the model still runs in ONNX Runtime.)"""

    reuses_outputs = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._reused = {}

    def infer_impl(self, feed):
        fresh = super().infer_impl(feed)
        out = {}
        for name, arr in fresh.items():
            buf = self._reused.get(name)
            if buf is None or buf.shape != arr.shape:
                buf = self._reused[name] = np.empty_like(arr)
            np.copyto(buf, arr)
            out[name] = buf
        return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(make_bundle(tmp_path_factory.mktemp("reuse") / "y", color="y"))


def _run(bundle, out_dir, reusing: bool, workers: int, tile: int):
    def make():
        if reusing:
            be = ReusingOrtBackend(bundle.model_path("fp32"), provider="cpu", threads=1)
            be.precision = "fp32"
            return be
        return create_backend(bundle, "ort-cpu", "fp32", threads=1)

    backends = [make() for _ in range(workers)]
    uri = "test://?size=64x48&fps=0&frames=%d" % FRAMES
    stats = Pipeline(bundle, backends, uri, str(out_dir) + "/", PipelineOptions(tile=tile, quiet=True)).run()
    assert stats["frames_written"] == FRAMES and stats["accounted"]
    return out_dir


def _frames(folder):
    import cv2

    names = sorted(os.listdir(str(folder)))
    assert len(names) == FRAMES
    return [cv2.imread(os.path.join(str(folder), n)) for n in names]


def test_contract_flags():
    assert Backend.reuses_outputs is False and OrtBackend.reuses_outputs is False
    assert TrtBackend.reuses_outputs is True  # its infer_impl returns the pinned host buffers


def test_infer_returns_owned_arrays(bundle):
    x1 = np.random.RandomState(0).rand(1, 1, 8, 8).astype(np.float32)
    x2 = np.random.RandomState(1).rand(1, 1, 8, 8).astype(np.float32)
    with ReusingOrtBackend(bundle.model_path("fp32"), provider="cpu", threads=1) as be:
        a = be.infer({"lr": x1})["sr"]
        b = be.infer({"lr": x2})["sr"]
        assert not np.shares_memory(a, b)
        np.testing.assert_allclose(a[0, 0, ::2, ::2], x1[0, 0], atol=1e-6)  # not overwritten by the 2nd call
        assert be.inference_time is not None


@pytest.mark.parametrize("workers,tile", [(1, 0), (3, 0), (1, 20)], ids=["1-worker", "3-workers", "tiled"])
def test_reusing_backend_writes_the_same_files_as_a_fresh_array_backend(bundle, tmp_path, workers, tile):
    fresh = _frames(_run(bundle, tmp_path / "fresh", False, workers, tile))
    reused = _frames(_run(bundle, tmp_path / "reused", True, workers, tile))
    differ = [i for i, (a, b) in enumerate(zip(fresh, reused)) if not np.array_equal(a, b)]
    assert not differ, "%d of %d frames differ from the fresh-array backend: %s" % (len(differ), FRAMES, differ)
    # and the frames are not all alike, so a stale buffer would have shown
    assert any(not np.array_equal(fresh[0], f) for f in fresh[1:])
