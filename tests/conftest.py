"""Shared fixtures: where ../shared is, and skips that say why."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    return Path(os.environ.get("KDEDGE_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder (data and published weights); skips when absent."""
    path = _shared_dir()
    if not (path / "data").is_dir():
        pytest.skip("needs ../shared/data (set KDEDGE_SHARED to its location)")
    return path


@pytest.fixture(scope="session")
def shared_weights(shared_dir) -> Path:
    path = shared_dir / "weights"
    if not path.is_dir():
        pytest.skip("needs ../shared/weights")
    return path
