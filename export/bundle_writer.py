"""Step 5 of `kdedge export`: the bundle's manifest.json, through the runtime's one schema definition.

`kdedge.runtime.bundle.write_manifest` validates the dict (the same validator `load_bundle` uses),
fills in and checks every file's sha256, and writes atomically; this module is the single place the
export calls it, so a schema change touches one line here. The folder itself is written as a
temporary sibling and renamed into place by `kdedge.export.api` (no half-written bundle).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict


def write_bundle_manifest(folder, manifest: Dict[str, Any]) -> Path:
    """Add the whole-frame graphs, validate and write folder/manifest.json; sha256 of each file is filled in."""
    from kdedge.export.frame_graph import frame_graph_files
    from kdedge.runtime.bundle import write_manifest

    for entry in manifest.get("precisions", {}).values():
        entry.pop("sha256", None)  # always hash what is on disk now
    # whole-frame graphs (colour conversion inside the model) of the files just written
    manifest["frame_graphs"] = frame_graph_files(folder, manifest)
    path = write_manifest(folder, manifest)
    import json

    written = json.loads(Path(path).read_text(encoding="utf-8"))
    for prec, entry in written["precisions"].items():
        manifest["precisions"][prec]["sha256"] = entry["sha256"]
    return path
