"""pyproject lists every package by hand (export/ and runtime/ are mapped); keep the list complete."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"kdedge": REPO / "kdedge", "kdedge.export": REPO / "export", "kdedge.runtime": REPO / "runtime"}


def _declared_packages():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return set(data["tool"]["setuptools"]["packages"])


def test_every_package_folder_is_declared():
    found = set()
    for name, root in ROOTS.items():
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root).parts
            found.add(".".join((name,) + rel))
    missing = found - _declared_packages()
    assert not missing, "add to [tool.setuptools] packages in pyproject.toml: %s" % sorted(missing)
