"""The one exception type users see: what went wrong, with which file, and how to fix it.

Library code raises `KdedgeError`; the CLI catches it at the boundary, prints it without a
traceback and exits non-zero (see `kdedge.cli.main`). Anything else is a bug and keeps its
traceback.
"""
from __future__ import annotations

from typing import Optional


class KdedgeError(Exception):
    """A user-facing error: `message` names the input at fault, `fix` says what to do."""

    def __init__(self, message: str, fix: Optional[str] = None):
        self.message = message
        self.fix = fix
        super().__init__(message if not fix else "%s\n  fix: %s" % (message, fix))


class UsageError(KdedgeError):
    """A bad option value (`--frames 0`): exit status 2, as argparse gives for a bad option."""

    exit_status = 2


# Exit statuses of a run ended by a signal (the shell's 128 + signal number); documented in --help.
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


# errno -> (what happened, how to fix it); the message always names the path.
_OS_ERRORS = {
    "ENOSPC": ("no space left on the device holding %s", "free space there, or write to another disk"),
    "EDQUOT": ("disk quota exceeded writing %s", "free space in your quota, or write to another disk"),
    "EACCES": ("permission denied: %s", "choose a location you can write to, or fix its permissions (ls -ld)"),
    "EPERM": ("operation not permitted on %s", "choose a location you can write to, or fix its permissions (ls -ld)"),
    "EROFS": ("%s is on a read-only filesystem", "write to a writable disk (check the mount options)"),
    "ENOENT": ("no such file or folder: %s", "check the path; create missing folders first"),
    "ENOTDIR": ("a part of %s is not a folder", "check the path"),
    "EISDIR": ("%s is a folder, a file was expected", "give a file name"),
    "EEXIST": ("%s already exists", "choose another name or remove it"),
    "EIO": ("input/output error on %s", "the disk or the network filesystem is failing: check dmesg, write elsewhere"),
    "EMFILE": ("too many open files while opening %s", "raise the limit (ulimit -n)"),
}


def from_os_error(exc: OSError, path: Optional[str] = None, doing: Optional[str] = None) -> KdedgeError:
    """An OSError (EACCES, ENOSPC, EROFS, ...) as a KdedgeError naming the path and the fix.

    `path` is used when the exception carries no file name (a failed write() has none); `doing`
    ("writing the checkpoint") is put in front of the message."""
    import errno as _errno

    where = exc.filename if getattr(exc, "filename", None) is not None else path
    where = str(where) if where is not None else "(unknown file)"
    name = _errno.errorcode.get(exc.errno or 0, "")
    what, fix = _OS_ERRORS.get(name, ("%s: " + (exc.strerror or str(exc)), None))
    message = what % where
    if doing:
        message = "%s: %s" % (doing, message)
    return KdedgeError(message, fix=fix)
