"""TrtBackend's own decisions, and the profile/tiling logic, without TensorRT or a GPU.

No TensorRT, pycuda or GPU exists on the development machines. `FakeTrt`/`FakeCuda` below are
STAND-INS for TensorRT and pycuda (a nearest-neighbour x2 "engine" with a 64x96 profile max, and a
context that records push/pop/detach with the calling thread). They test only kdedge's logic around
them: which thread releases the pycuda context, what happens when activation fails, that
`set_input_shape`'s result is checked, that outputs are reused buffers the contract copies, and that
the pipeline tiles frames to the profile. They say nothing about whether the real TensorRT calls
work: that is tests/test_trt_build.py::test_real_engine_build and test_runtime_backends.py's
TensorRT test, which skip here.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from kdedge.errors import KdedgeError
from kdedge.runtime.backends import profile as prof
from kdedge.runtime.backends import trt as trt_backend
from kdedge.runtime.bundle import load_bundle
from kdedge.runtime.pipeline import Pipeline, PipelineOptions
from kdedge.runtime.processor import SRProcessor

try:
    from test_runtime_helpers import make_bundle
except ImportError:
    from tests.test_runtime_helpers import make_bundle

PROFILE = ((1, 1, 8, 8), (1, 1, 32, 32), (1, 1, 64, 96))


class FakeCuda:
    def __init__(self, fail_setup=False):
        self.events = []  # (what, thread ident)
        self.memory = {}
        self.live = 0

    def _log(self, what):
        self.events.append((what, threading.get_ident()))

    def init(self):
        pass

    def Device(self, n):
        cuda = self

        class Ctx:
            def push(self):
                cuda._log("push")

            def pop(self):
                cuda._log("pop")

            def detach(self):
                cuda._log("detach")

        class Dev:
            def make_context(self):
                cuda._log("make_context")
                return Ctx()

        return Dev()

    class Stream:
        handle = 7

        def synchronize(self):
            pass

    def pagelocked_empty(self, shape, dtype):
        return np.empty(shape, dtype)

    def mem_alloc(self, nbytes):
        cuda = self
        cuda.live += 1

        class Alloc:
            def __init__(self):
                self.addr = 1000 + len(cuda.memory)
                cuda.memory[self.addr] = None

            def __int__(self):
                return self.addr

            def free(self):
                cuda.live -= 1

        return Alloc()

    def memcpy_htod_async(self, dev, host, stream):
        self.memory[int(dev)] = host.copy()

    def memcpy_dtoh_async(self, host, dev, stream):
        np.copyto(host, self.memory[int(dev)])


class FakeTrt:
    __version__ = "10.3.0.26"

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            pass

    class TensorIOMode:
        INPUT, OUTPUT = "in", "out"

    def __init__(self, cuda, deserialize_ok=True):
        self.cuda = cuda
        self.deserialize_ok = deserialize_ok
        fake = self

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, data):
                return FakeEngine(fake.cuda) if fake.deserialize_ok else None

        self.Runtime = Runtime

    @staticmethod
    def nptype(dt):
        return np.float32


class FakeEngine:
    num_io_tensors = 2

    def __init__(self, cuda):
        self.cuda = cuda

    def get_tensor_name(self, i):
        return ["lr", "sr"][i]

    def get_tensor_mode(self, name):
        return "in" if name == "lr" else "out"

    def get_tensor_dtype(self, name):
        return "float"

    def get_tensor_shape(self, name):
        return (1, 1, -1, -1)

    def get_tensor_profile_shape(self, name, index):
        assert (name, index) == ("lr", 0)
        return [list(s) for s in PROFILE]

    def create_execution_context(self):
        return FakeContext(self.cuda)


class FakeContext:
    def __init__(self, cuda):
        self.cuda = cuda
        self.addr = {}
        self.shape = None

    def set_input_shape(self, name, shape):
        lo, _, hi = PROFILE
        ok = all(a <= s <= b for a, s, b in zip(lo, shape, hi))
        self.shape = tuple(shape) if ok else None
        return ok

    def get_tensor_shape(self, name):
        n, c, h, w = self.shape
        return (n, c, 2 * h, 2 * w)

    def set_tensor_address(self, name, addr):
        self.addr[name] = addr

    def execute_async_v3(self, handle):
        x = self.cuda.memory[self.addr["lr"]]
        self.cuda.memory[self.addr["sr"]] = x.repeat(2, axis=2).repeat(2, axis=3)
        return True


@pytest.fixture()
def fakes(monkeypatch, tmp_path):
    cuda = FakeCuda()
    trt = FakeTrt(cuda)
    monkeypatch.setattr(trt_backend, "import_tensorrt", lambda: (trt, cuda))
    engine = tmp_path / "model.fp32.test.trt10.3.engine"
    engine.write_bytes(b"not a real engine")
    return trt, cuda, engine


def _events(cuda, kind=None):
    return [e for e in cuda.events if kind is None or e[0] == kind]


def test_activate_pops_and_deactivate_detaches_in_the_owner_thread(fakes):
    trt, cuda, engine = fakes
    be = trt_backend.TrtBackend(engine)
    be.activate()
    assert [e[0] for e in cuda.events] == ["make_context", "pop"]
    assert be.input_limits() == ((8, 8), (64, 96))
    x = np.random.RandomState(0).rand(1, 1, 8, 12).astype(np.float32)
    a = be.infer({"lr": x})["sr"]
    b = be.infer({"lr": x[:, :, ::-1].copy()})["sr"]
    np.testing.assert_array_equal(a, x.repeat(2, 2).repeat(2, 3))  # still frame 1: infer() copied it
    assert not np.shares_memory(a, b)
    be.deactivate()
    assert [e[0] for e in cuda.events][-2:] == ["push", "detach"] and cuda.live == 0
    assert {t for _, t in cuda.events} == {threading.get_ident()}


def test_deactivate_from_another_thread_refuses_instead_of_leaking(fakes):
    trt, cuda, engine = fakes
    be = trt_backend.TrtBackend(engine)
    be.activate()
    errors = []

    def other():
        try:
            be.deactivate_impl()
        except KdedgeError as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert errors and "same thread" in errors[0].fix and "activated it" in errors[0].message
    assert not _events(cuda, "detach")  # nothing half-released
    be.deactivate()  # the owner still can
    assert len(_events(cuda, "detach")) == 1


def test_failed_activation_detaches_the_new_context(fakes):
    trt, cuda, engine = fakes
    trt.deserialize_ok = False
    be = trt_backend.TrtBackend(engine)
    with pytest.raises(KdedgeError, match="could not deserialize"):
        be.activate()
    assert [e[0] for e in cuda.events] == ["make_context", "detach"]  # no pop-then-leak
    assert not be.is_active


def test_shape_outside_the_profile_is_a_clear_error(fakes):
    trt, cuda, engine = fakes
    with trt_backend.TrtBackend(engine) as be:
        with pytest.raises(KdedgeError, match=r"shape 1x1x100x20 .* profile takes 8x8 to 64x96") as info:
            be.infer({"lr": np.zeros((1, 1, 100, 20), np.float32)}, check_inputs=False)
        assert "--tile" in info.value.fix


def test_pipeline_tiles_frames_to_the_engine_profile(fakes, tmp_path):
    """A 150x200 frame (beyond the 64x96 profile max) is tiled automatically; the result equals the
    whole-frame nearest-neighbour upscale, as ONNX Runtime computes it."""
    trt, cuda, engine = fakes
    bundle = load_bundle(make_bundle(tmp_path / "b", color="y"))
    be = trt_backend.TrtBackend(engine)
    with be:
        proc = SRProcessor(bundle.spec, be)
        x = np.random.RandomState(3).rand(1, 150, 200).astype(np.float32)
        out = proc.infer(x)
        np.testing.assert_array_equal(out, x.repeat(2, 1).repeat(2, 2))
        with pytest.raises(KdedgeError, match=r"--tile 90 .* beyond the TensorRT engine profile's maximum 64x96") as info:
            SRProcessor(bundle.spec, be, tile=90).infer(x)
        assert "--tile 32 or less" in info.value.fix
    stats = Pipeline(bundle, [trt_backend.TrtBackend(engine)], "test://?size=200x150&fps=0&frames=3", "null://",
                     PipelineOptions(quiet=True)).run()
    assert stats["frames_written"] == 3 and stats["end_reason"] == "eos"


@pytest.mark.parametrize("h,w,tile,expect", [
    (48, 64, 0, 0),      # fits: whole frames
    (64, 96, 0, 0),      # exactly the max
    (65, 96, 0, 32),     # one row too many: tiles of 64 - 2*16
    (1080, 1920, 0, 32),
    (40, 40, 48, 48),    # the user's tile fits (and the frame is within it)
    (200, 200, 20, 20),
])
def test_choose_tile(h, w, tile, expect):
    assert prof.choose_tile(h, w, tile, 16, 1, ((8, 8), (64, 96))) == expect


def test_choose_tile_refusals_and_multiples():
    limits = ((8, 8), (1088, 1920))
    assert prof.choose_tile(2160, 3840, 0, 16, 1, None) == 0  # no limits: nothing changes
    assert prof.choose_tile(2160, 3840, 0, 16, 1, limits) == 1056
    assert prof.choose_tile(1088, 1920, 0, 16, 4, limits) == 0
    assert prof.choose_tile(1087, 1920, 0, 16, 4, limits) == 0  # pads to 1088
    assert prof.choose_tile(2160, 3840, 0, 16, 5, limits) == 1085 - 32  # 1085 = largest multiple of 5 <= 1088
    assert prof.fits_profile(1088, 1920, limits) and not prof.fits_profile(1089, 1920, limits)
    with pytest.raises(KdedgeError, match="frame 4x6 .* smaller than .* minimum 8x8"):
        prof.choose_tile(4, 6, 0, 16, 1, limits)
    with pytest.raises(KdedgeError, match="--tile 1500") as info:
        prof.choose_tile(2160, 3840, 1500, 16, 1, limits)
    assert "--tile 1056 or less" in info.value.fix
    with pytest.raises(KdedgeError, match="no room"):
        prof.choose_tile(100, 100, 0, 16, 1, ((8, 8), (30, 30)))


def test_shape_rejected_message():
    msg = trt_backend.shape_rejected_message("lr", (1, 1, 1200, 2000), ((8, 8), (1088, 1920)), "/b/e.engine")
    assert msg == "TensorRT rejected input 'lr' of shape 1x1x1200x2000 for e.engine: its profile takes 8x8 to 1088x1920 (HxW)"
