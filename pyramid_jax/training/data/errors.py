"""Missing or broken data files: never silent. `fail` stops the run naming the file; `skip` logs the file and its
reason, counts it, and leaves the sample out."""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import zipfile
from typing import Callable

from pyramid_jax.errors import UserError

LOG = logging.getLogger("pyramid_jax.training.data")


class OnError(str, enum.Enum):
    FAIL = "fail"
    SKIP = "skip"


class DataError(UserError):
    """A sample's file (or annotation line) is missing or unreadable; the message starts with its path."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path


# What reading a missing, truncated or malformed file raises (numpy, zipfile, imageio-ffmpeg, PIL).
READ_ERRORS = (OSError, ValueError, KeyError, EOFError, RuntimeError, StopIteration, zipfile.BadZipFile)


@contextlib.contextmanager
def reading(path: str, what: str):
    """Turns a read failure inside the block into a DataError naming `path` (`what`: e.g. "latent file")."""
    try:
        yield
    except DataError:
        raise
    except READ_ERRORS as e:
        first_line = (str(e).strip().splitlines() or [""])[0]  # ffmpeg appends its whole log
        raise DataError(path, f"unreadable {what} ({type(e).__name__}: {first_line})") from None


class BadFiles:
    """Applies the `OnError` policy and keeps the tally; thread-safe, as grain reads batches in threads."""

    def __init__(self, on_error: OnError, log: Callable[[str], None] = LOG.warning):
        self.on_error, self.log = OnError(on_error), log
        self.skipped: list[str] = []
        self._lock = threading.Lock()

    def report(self, error: DataError) -> None:
        """Raises `error` (FAIL), or logs and counts it (SKIP)."""
        if self.on_error is OnError.FAIL:
            raise error
        with self._lock:
            self.skipped.append(str(error))
        self.log(f"skipped sample ({len(self.skipped)} so far): {error}")

    @property
    def count(self) -> int:
        return len(self.skipped)
