"""The bundle folder of one export: written as a temporary sibling of --out, renamed into place whole.

`prepare_out` checks the destination and makes the `.NAME.tmp-PID-*` sibling; `finish` gives the
files a plain copy's permissions and swaps the new bundle in (an existing one is replaced only after
the new one is whole); `clean_stale` removes what a killed export left; `full_disk` says when a
failure was in fact a full filesystem. Scratch folders in the system temp folder use WORK_PREFIX.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from kdedge.errors import KdedgeError

WORK_PREFIX = "kdedge-export-"  # scratch folders in the system temp folder: kdedge-export-PID-XXXX
STALE_HOURS = 6.0  # a leftover without a pid in its name (an older kdedge) is stale after this long


def prepare_out(out: Path, overwrite: bool) -> Path:
    """Check the destination and create the temporary sibling folder the bundle is written into."""
    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise KdedgeError("output folder %s already exists" % out, fix="choose another --out, or add --overwrite")
    if out.exists() and not out.is_dir():
        raise KdedgeError("output path %s exists and is not a folder" % out)
    parent = out.parent
    if not parent.is_dir():
        raise KdedgeError("the folder %s (parent of --out) does not exist" % parent, fix="create it first, or choose another --out")
    clean_stale(parent, out.name)
    try:
        return Path(tempfile.mkdtemp(prefix=".%s.tmp-%d-" % (out.name, os.getpid()), dir=str(parent)))
    except OSError as exc:
        raise KdedgeError("cannot write into %s (not writable: %s)" % (parent, exc.strerror or exc),
                          fix="choose an --out in a folder you can write to") from exc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def _stale(path: Path, rest: str) -> bool:
    """`rest` is the name after the prefix: "PID-XXXX" (this kdedge) or "XXXX" (older ones)."""
    head = rest.split("-", 1)[0]
    try:
        age_h = (time.time() - path.lstat().st_mtime) / 3600.0
    except OSError:
        return False
    if head.isdigit() and "-" in rest:
        return not _pid_alive(int(head)) or age_h > 24 * 7  # a live pid this old was reused
    return age_h > STALE_HOURS


def clean_stale(parent: Path, name: str, log: Optional[Callable[[str], None]] = None) -> List[str]:
    """Remove what a killed export left (`kill -9`, power loss): `.NAME.tmp-PID-*` beside --out and
    `kdedge-export-PID-*` in the temp folder whose process is gone (or, without a pid, older than
    STALE_HOURS), and put back a bundle a killed `--overwrite` had moved aside (`.NAME.old-PID`)
    when --out itself is missing. Returns the removed paths. Never touches a live export's files."""
    removed = []  # type: List[str]
    candidates = []
    try:
        candidates += [(p, p.name[len(".%s.tmp-" % name):]) for p in Path(parent).iterdir()
                       if p.name.startswith(".%s.tmp-" % name)]
        olds = [p for p in Path(parent).iterdir() if p.name.startswith(".%s.old-" % name)]
    except OSError:
        olds = []
    try:
        tmpdir = Path(tempfile.gettempdir())
        candidates += [(p, p.name[len(WORK_PREFIX):]) for p in tmpdir.iterdir() if p.name.startswith(WORK_PREFIX)]
    except OSError:
        pass
    out = Path(parent) / name
    for old in olds:
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and _pid_alive(int(pid)):
            continue
        if not out.exists():
            os.replace(str(old), str(out))  # the killed --overwrite had moved the old bundle aside
            (log or print)("restored %s from %s (left by a killed export)" % (out, old))
        else:
            candidates.append((old, "%s-x" % pid))
    for path, rest in candidates:
        if path.is_dir() and not path.is_symlink() and _stale(path, rest):
            shutil.rmtree(str(path), ignore_errors=True)
            removed.append(str(path))
    if removed:
        (log or print)("removed %d leftover(s) of killed exports: %s" % (len(removed), ", ".join(removed)))
    return removed


def full_disk(paths: Sequence[Path]) -> Optional[str]:
    """The first of `paths` whose filesystem is (nearly) full, else None: an export that fails there
    failed for want of space, whatever the library that hit it said ("Failed to find proper ai.onnx domain")."""
    from kdedge.paths import free_bytes

    for path in paths:
        free = free_bytes(str(path))
        if free is not None and free < 4 * 1024 * 1024:
            return str(path)
    return None


def finish(tmp: Path, out: Path) -> None:
    """Move the finished bundle into place; an existing one is replaced only after the new one is whole."""
    # mkdtemp/mkstemp create owner-only files; a bundle is meant to be shared and installed, so give
    # it the permissions a plain copy would get under the current umask.
    umask = os.umask(0)
    os.umask(umask)
    for root, dirs, files in os.walk(str(tmp)):
        os.chmod(root, 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~umask)
    old = None
    if out.exists():
        old = out.parent / (".%s.old-%d" % (out.name, os.getpid()))
        os.replace(str(out), str(old))
    os.replace(str(tmp), str(out))
    if old is not None:
        shutil.rmtree(str(old), ignore_errors=True)
