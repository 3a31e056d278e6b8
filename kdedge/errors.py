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
