"""Add whole-frame graphs (BGR uint8 in, BGR uint8 out; export/frame_graph.py) to an existing bundle.

`kdedge export` writes them into new bundles; this brings bundles exported before they existed (the
shipped kdedge/assets/*_x2) up to date without re-exporting, so their models stay bit for bit the same.
The folder is updated in a temporary copy and swapped in only when the new manifest validates.

    python scripts/add_frame_graphs.py kdedge/assets/default_x2 kdedge/assets/fast_x2
"""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    from kdedge.errors import KdedgeError
    from kdedge.export.frame_graph import add_frame_graphs

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("bundles", nargs="+", help="bundle folders")
    args = parser.parse_args(argv)
    try:
        for folder in args.bundles:
            written = add_frame_graphs(folder)
            print("%s: %s" % (folder, ", ".join("%s -> %s" % kv for kv in written.items()) or "nothing to add"))
    except KdedgeError as exc:
        print("error: %s%s" % (exc.message, "\n  fix: %s" % exc.fix if exc.fix else ""), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
