"""argparse `type=` converters shared by the command lines, with messages that name the value."""

from __future__ import annotations

import argparse
import sys


def positive_int(text: str) -> int:
    """An integer > 0."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    return _int_at_least(text, 0, "an integer >= 0")


def _int_at_least(text: str, minimum: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, received {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {expected}, received {text!r}")
    return value


def requested_task(argv=None) -> str | None:
    """The value of --task on a command line (`--task X` or `--task=X`), or None.

    `python -m tf3dgan.evaluate` reads it before parsing, to hand the whole
    command line to the benchmark of that task.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    for index, arg in enumerate(args):
        if arg == "--task" and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--task="):
            return arg.split("=", 1)[1]
    return None
