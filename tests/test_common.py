"""kdedge.common: the one atomic write, file hash, size syntax and precision list every layer uses."""
import hashlib
import os

import pytest

from kdedge.common import FILE_PRECISIONS, PRECISIONS, atomic_write_bytes, parse_size, sha256_file
from kdedge.errors import KdedgeError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_creates_folders_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "a" / "b" / "x.bin"
    assert atomic_write_bytes(path, b"one") == path
    assert path.read_bytes() == b"one"
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # what open() gives, not mkstemp's 0600
    atomic_write_bytes(str(path), b"two")
    assert path.read_bytes() == b"two"
    assert os.listdir(path.parent) == ["x.bin"]


def test_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{}")
    path.chmod(0o600)
    atomic_write_bytes(path, b"[]")
    assert path.stat().st_mode & 0o777 == 0o600 and path.read_bytes() == b"[]"


def test_atomic_write_into_an_unwritable_folder(tmp_path):
    if os.geteuid() == 0:
        target = "/proc/kdedge_cannot_write_here/x.bin"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = str(ro / "x.bin")
    with pytest.raises(KdedgeError, match="cannot write .*x.bin"):
        atomic_write_bytes(target, b"data")


def test_sha256_file(tmp_path):
    data = os.urandom(3 << 19)  # more than one 1 MiB chunk
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == sha256_file(str(tmp_path / "f")) == hashlib.sha256(data).hexdigest()


def test_sizes_are_width_first():
    assert parse_size("1920x1080") == (1920, 1080)
    assert parse_size("960X540") == (960, 540)
    with pytest.raises(KdedgeError, match=r"--size must look like WIDTHxHEIGHT .*'big'"):
        parse_size("big", "--size")
    with pytest.raises(KdedgeError, match="between 1 and 8192"):
        parse_size("0x540", "--size", max_side=8192)
    with pytest.raises(KdedgeError, match="between 1 and 8192"):
        parse_size("960x9000", "--size", max_side=8192)


def test_precisions():
    assert FILE_PRECISIONS == ("fp32", "fp16", "int8", "int8_u8s8")  # the files a bundle can hold
    assert set(PRECISIONS) - set(FILE_PRECISIONS) == {"bf16"}  # computed by OpenVINO from the fp32 file
