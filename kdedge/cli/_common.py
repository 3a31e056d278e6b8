"""Argument groups shared by several commands, and YAML config files that flags override.

`--config FILE` loads a YAML mapping whose keys are the command's option names (dashes or
underscores); its values become defaults, and flags given on the command line win. An unknown key
or a value of the wrong type is an error naming the file, never silently ignored.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, List, Optional

from kdedge.errors import KdedgeError, from_os_error


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
                if isinstance(value, float) and not value.is_integer() and _int_type(action.type):
                    raise ValueError("not a whole number")
                value = action.type(value)
            except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: .inf for an integer
                raise KdedgeError("config file %s: %s=%r: %s" % (path, key, value, exc)) from exc
        if action.choices is not None and value is not None and value not in action.choices:
            raise KdedgeError("config file %s: %s=%r is not one of %s" % (path, key, value, list(action.choices)))
        values[dest] = value
    return values


def _int_type(kind) -> bool:
    """True for argparse types that turn 10.5 into 10 (int itself, or a converter that does)."""
    try:
        return kind(10.5) == 10
    except (TypeError, ValueError):
        return False


def parse_with_config(parser: argparse.ArgumentParser, argv: Optional[List[str]]) -> argparse.Namespace:
    """Parse argv; when the parser has --config, the file's values become defaults first."""
    args = parser.parse_args(argv)
    path = getattr(args, "config", None)
    if path:
        parser.set_defaults(**load_config_file(path, parser))
        args = parser.parse_args(argv)
    return args


EXIT_HELP = ("exit status: 0 done; 1 failed (the message names the file and the fix); 2 bad arguments; "
             "130 / 143 stopped by SIGINT (Ctrl-C) / SIGTERM after finishing what could be finished")


def guarded(prog: str, call: Callable[[], int]) -> int:
    """The error boundary of every command: run `call()` and turn what users cause into a message
    without a traceback and a non-zero exit status. KdedgeError: its message and fix (status 1, or
    2 for a UsageError); OSError (EACCES, ENOSPC, EROFS ...): the path and the fix (1); a closed
    stdout pipe (`| head`): quiet, 141 as a shell reports SIGPIPE; Ctrl-C: 130. Anything else is a
    bug and keeps its traceback."""
    try:
        status = int(call() or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the boundary, not at interpreter exit
        return status
    except KdedgeError as exc:
        _say(prog, exc)
        return getattr(exc, "exit_status", 1)
    except BrokenPipeError:
        # stdout's reader went away: point stdout at /dev/null so the interpreter's final flush is quiet
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        print("%s: output pipe closed early (stdout); output truncated" % prog, file=sys.stderr)
        return 141
    except OSError as exc:
        _say(prog, from_os_error(exc))
        return 1
    except KeyboardInterrupt:
        print("%s: interrupted" % prog, file=sys.stderr)
        return 130


def _say(prog: str, exc: KdedgeError) -> None:
    print("%s: error: %s" % (prog, exc.message), file=sys.stderr)
    if exc.fix:
        print("  fix: %s" % exc.fix, file=sys.stderr)
