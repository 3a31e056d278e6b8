"""Where outputs may go: the one place that checks an output path against the inputs and that a
folder can be written, before any work is done (torch-free: the runtime uses it too).

An output that is one of the inputs (`kdedge upscale x.mp4 x.mp4`, `frames/ frames/`) would be
destroyed while it is read, so it is refused; so is replacing a folder that holds an input.
"""
from __future__ import annotations

import errno
import os
from typing import Iterable, Optional

from kdedge.errors import KdedgeError, from_os_error


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(os.path.expanduser(str(path))))


def same_path(a: str, b: str) -> bool:
    """True when `a` and `b` are the same file or folder (symlinks and hard links included)."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return _real(a) == _real(b)


def check_output(output: str, inputs: Iterable[Optional[str]], what: str = "output", replaces_folder: bool = False) -> None:
    """KdedgeError when writing `output` would overwrite or replace one of `inputs` (files or folders).

    Refused: output == an input (file or folder); with `replaces_folder` (the output folder is
    deleted and written anew, as `export --overwrite` does), an output folder that holds an input."""
    out = _real(output)
    for inp in inputs:
        if not inp:
            continue
        src = _real(inp)
        if same_path(output, inp):
            raise KdedgeError("%s %s is also the input: writing it would destroy the input" % (what, output),
                              fix="write to another file or folder")
        if replaces_folder and os.path.isdir(out) and (src + os.sep).startswith(out.rstrip(os.sep) + os.sep):
            raise KdedgeError("%s folder %s holds the input %s: replacing it would destroy the input" % (what, output, inp),
                              fix="choose an output folder outside the input's folder")


def check_writable_dir(folder: str, what: str = "output folder", create: bool = False) -> None:
    """KdedgeError unless `folder` exists (or, with `create`, can be made) and can be written."""
    folder = str(folder) or "."
    if create and not os.path.isdir(folder):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise from_os_error(exc, folder, "cannot create %s %s" % (what, folder)) from exc
    if not os.path.isdir(folder):
        raise KdedgeError("%s %s does not exist" % (what, folder), fix="create it first, or choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        exc = OSError(errno.EROFS if _read_only(folder) else errno.EACCES, "not writable", folder)
        raise from_os_error(exc, folder, "cannot write into %s %s" % (what, folder))


def check_writable_file(path: Optional[str], what: str = "output file") -> None:
    """For a file written at the end of a run (--stats-json, --out): its folder exists or can be
    made and is writable, and the path is not a folder. Checked first, so no result is lost at the end."""
    if not path:
        return
    if os.path.isdir(path):
        raise KdedgeError("%s %s is a folder" % (what, path), fix="give a file name")
    check_writable_dir(os.path.dirname(os.path.abspath(path)), "folder of the %s" % what, create=True)


def _read_only(folder: str) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def free_bytes(path: str) -> Optional[int]:
    """Bytes an unprivileged writer may still use on the filesystem holding `path` (None: unknown)."""
    try:
        st = os.statvfs(path)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize
