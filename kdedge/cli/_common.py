"""Argument groups shared by several commands, and YAML config files that flags override.

`--config FILE` loads a YAML mapping whose keys are the command's option names (dashes or
underscores); its values become defaults, and flags given on the command line win. An unknown key
or a value of the wrong type is an error naming the file, never silently ignored.
"""
from __future__ import annotations

import argparse
import os
from typing import List, Optional

from kdedge.errors import KdedgeError


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="YAML", default=None,
        help="YAML file of option values (keys are option names); command-line flags override it",
    )


def load_config_file(path: str, parser: argparse.ArgumentParser) -> dict:
    """Read a YAML config and check every key against the parser's options."""
    import yaml

    if not os.path.isfile(path):
        raise KdedgeError("config file %s does not exist" % path, fix="check the path given to --config")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as exc:
        raise KdedgeError("config file %s is not valid YAML: %s" % (path, exc)) from exc
    if not isinstance(data, dict):
        raise KdedgeError("config file %s must hold a mapping of option: value" % path)
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    values = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in actions:
            raise KdedgeError(
                "config file %s: unknown option %r" % (path, key),
                fix="valid keys: " + ", ".join(sorted(actions)),
            )
        action = actions[dest]
        if action.type is not None and value is not None and not isinstance(value, (list, bool)):
            try:
                value = action.type(value)
            except (TypeError, ValueError) as exc:
                raise KdedgeError("config file %s: %s=%r: %s" % (path, key, value, exc)) from exc
        if action.choices is not None and value is not None and value not in action.choices:
            raise KdedgeError("config file %s: %s=%r is not one of %s" % (path, key, value, list(action.choices)))
        values[dest] = value
    return values


def parse_with_config(parser: argparse.ArgumentParser, argv: Optional[List[str]]) -> argparse.Namespace:
    """Parse argv; when the parser has --config, the file's values become defaults first."""
    args = parser.parse_args(argv)
    path = getattr(args, "config", None)
    if path:
        parser.set_defaults(**load_config_file(path, parser))
        args = parser.parse_args(argv)
    return args
