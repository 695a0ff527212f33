"""Errors a user can fix (a bad argument, file or field) and the CLI wrapper that prints them as one line.

Every check in the package raises a `UserError` subclass whose message names the argument, file or field. The
command-line tools run their body through `run_cli`, which prints `error: <message>` and exits 2 for a bad argument
(usage) or 1 otherwise; only genuine bugs, or any error under `--debug`, end in a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

USAGE_EXIT, FAILURE_EXIT = 2, 1


class UserError(Exception):
    """A problem the user can fix; the message names the argument, file or field."""


class ArgumentError(UserError, ValueError):
    """An argument has the wrong type or is out of range (exit code 2 from a CLI)."""


class NonFiniteError(UserError, FloatingPointError):
    """Numbers became NaN or infinite (e.g. latents after a sampling unit, or weights in a checkpoint)."""


class OutputError(UserError, OSError):
    """An output could not be written completely; any file that was there before is untouched."""


class ErrorExit(SystemExit):
    """A CLI's exit after printing its `error:` line; `str()` is that line (the exit status is `code`)."""

    def __init__(self, message: str, code: int):
        super().__init__(code)
        self.message = message

    def __str__(self) -> str:
        return f"error: {self.message}"


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="on an error, show the full traceback")


def exit_code(error: BaseException) -> int | None:
    """The exit status for an error the user can fix (2: a bad argument, 1: anything else), None for a bug."""
    if isinstance(error, (ArgumentError, argparse.ArgumentTypeError)):
        return USAGE_EXIT
    # ValueError: the package's own range/shape checks predate UserError; OSError: missing, unreadable or
    # unwritable files (their messages name the path), full disks.
    if isinstance(error, (UserError, ValueError, OSError)):
        return FAILURE_EXIT
    return None


def message(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        text = f"{error.filename}: {text}"
    return text


def run_cli(body: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Runs a CLI's `body(argv)`; a user error becomes one `error:` line on stderr and an `ErrorExit`.

    With `--debug` among the arguments the error propagates with its traceback instead.
    """
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        return body(argv)
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: interrupted", file=sys.stderr)
        raise ErrorExit("interrupted", 130) from None
    except Exception as e:  # noqa: BLE001 - classified just below; bugs are re-raised untouched
        code = exit_code(e)
        if debug or code is None:
            raise
        print(f"error: {message(e)}", file=sys.stderr)
        raise ErrorExit(message(e), code) from None
