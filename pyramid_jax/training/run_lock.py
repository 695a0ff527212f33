"""One training run per output folder: an exclusive lock on `<output_dir>/.lock`, released when the process ends
(also when it is killed), so a second run into the same folder is refused instead of interleaving checkpoints."""

from __future__ import annotations

import fcntl
import os
from typing import IO

from pyramid_jax.errors import UserError

LOCK_FILE = ".lock"


class RunLockedError(UserError):
    """Another live process trains into the same output folder."""


def lock_output_dir(output_dir: str) -> IO:
    """Takes the folder's lock and returns its open file (keep it referenced for the whole run)."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, LOCK_FILE)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise RunLockedError(f"{output_dir} is in use by another training run ({owner}, lock {path}); wait for it "
                             "to finish or choose another output_dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle
