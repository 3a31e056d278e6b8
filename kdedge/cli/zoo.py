"""List, download and verify the published teacher weights kdedge knows by name.

Each zoo model is a file in a public repository at a pinned commit, with a pinned sha256. Files are
downloaded once into $KDEDGE_HOME/weights (default ~/.cache/kdedge/weights), verified before they
are kept, and verified again before every use. Offline, put the files in a folder named by
KDEDGE_ZOO_DIR (os.pathsep-separated list), or pass a file with `--weights`; KDEDGE_OFFLINE=1
forbids any download.

actions:
  list              names, architecture, scale, published Set5 PSNR, local status, origin
  download NAME...  fetch and verify (NAME may be `all`)
  verify [NAME...]  re-hash local copies (default: every one present); exit 1 on a mismatch

examples:
  kdedge zoo list
  kdedge zoo download imdn_x2 rlfn_x2
  KDEDGE_ZOO_DIR=../shared/weights kdedge zoo verify
  kdedge eval --model imdn_x2 --data ../shared/data/test/Set5 --scale 2
"""
from __future__ import annotations

import json

from kdedge.errors import KdedgeError

ACTIONS = ("list", "download", "verify")


def add_arguments(parser) -> None:
    parser.add_argument("action", nargs="?", default="list", choices=ACTIONS, help="what to do (default: list)")
    parser.add_argument("names", nargs="*", metavar="NAME", help="zoo model names (`all` for every one)")
    parser.add_argument("--json", action="store_true", help="list: print the table as JSON")
    parser.add_argument("--quiet", action="store_true", help="download: no progress bar")


def _names(names, zoo, default_all: bool):
    if not names:
        if default_all:
            return list(zoo.ZOO)
        raise KdedgeError("`kdedge zoo download` needs at least one NAME", fix="e.g. kdedge zoo download imdn_x2 (or all)")
    if "all" in names:
        return list(zoo.ZOO)
    for n in names:
        zoo.get_entry(n)  # unknown names fail before any download starts
    return list(names)


def run(args) -> int:
    from kdedge.models import zoo

    if args.action == "list":
        rows = []
        for e in zoo.ENTRIES:
            state, path = zoo.status(e)
            rows.append({
                "name": e.name, "arch": e.arch, "scale": e.scale, "set5_psnr": e.published_psnr.get("Set5"),
                "status": state, "path": str(path) if path else None, "origin": e.origin, "url": e.url,
                "sha256": e.sha256, "licence": e.licence, "paper": e.paper, "notes": e.notes,
            })
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        w = max(len(r["name"]) for r in rows)
        print("%s  %-8s %5s %6s  %-8s  %s" % ("name".ljust(w), "arch", "scale", "Set5", "local", "origin"))
        for r in rows:
            psnr = "%.2f" % r["set5_psnr"] if r["set5_psnr"] else "-"
            print("%s  %-8s %5s %6s  %-8s  %s" % (r["name"].ljust(w), r["arch"], "x%d" % r["scale"], psnr, r["status"], r["origin"]))
        print("\ncache: %s%s" % (zoo.cache_dir(), "   KDEDGE_ZOO_DIR: set" if zoo._zoo_dirs() else ""))
        return 0
    if args.action == "download":
        for name in _names(args.names, zoo, default_all=False):
            path = zoo.weights_path(name, progress=not args.quiet)
            print("%s  %s" % (name, path))
        return 0
    # verify
    names = _names(args.names, zoo, default_all=True)
    bad = 0
    checked = 0
    for name in names:
        state, path = zoo.status(zoo.get_entry(name))
        if state == "missing":
            if args.names:  # asked for by name: say so; otherwise absent files are simply not cached
                print("%s  missing" % name)
            continue
        checked += 1
        bad += state != "ok"
        print("%s  %s  %s" % (name, state, path))
    if bad:
        raise KdedgeError("%d of %d local zoo files do not match their pinned sha256" % (bad, checked),
                          fix="delete them and run `kdedge zoo download NAME` again")
    if checked == 0:
        print("no local zoo files found in %s" % zoo.cache_dir())
    return 0
