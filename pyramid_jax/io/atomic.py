"""Atomic outputs: a file or folder appears complete at its path, or not at all.

Everything is written to a temporary `.<name>.partial-<pid>-*` beside the destination, flushed to disk, verified,
and renamed over the destination; on any failure the temporary is removed and an existing destination is left
untouched. Partials of a killed run (their pid is gone) are removed by the next write to the same destination.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Callable, Iterator

from pyramid_jax.errors import ArgumentError, OutputError

PARTIAL = ".partial-"


def _partial_prefix(path: str) -> str:
    return f".{os.path.basename(path)}{PARTIAL}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_stale_partials(path: str) -> list[str]:
    """Removes the partials of `path` left by killed runs (pid no longer alive); returns what was removed."""
    parent, prefix, removed = os.path.dirname(os.path.abspath(path)), _partial_prefix(path), []
    if not os.path.isdir(parent):
        return removed
    for name in os.listdir(parent):
        pid = name[len(prefix):].split("-", 1)[0] if name.startswith(prefix) else ""
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            stale = os.path.join(parent, name)
            old = os.path.join(stale, "x")  # killed between moving the old folder aside and the new one in
            if not os.path.exists(path) and os.path.exists(old):
                os.rename(old, path)
            shutil.rmtree(stale) if os.path.isdir(stale) and not os.path.islink(stale) else os.remove(stale)
            removed.append(stale)
    return removed


def check_writable(path: str, name: str, folder: bool = False) -> None:
    """Fails (naming the argument `name`) unless `path` can be written: not empty, not a folder where a file is
    meant (or the reverse), and its nearest existing parent a writable folder (missing ones are created later)."""
    if not path:
        raise ArgumentError(f"{name} is empty; give a file path")
    path = os.path.abspath(path)
    if os.path.isdir(path) and not folder:
        raise ArgumentError(f"{name} {path} is a folder; give a file path")
    if os.path.exists(path) and not os.path.isdir(path) and folder:
        raise ArgumentError(f"{name} {path} is a file; give a folder path")
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ArgumentError(f"{name} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ArgumentError(f"{name} {path}: folder {parent} is not writable")
    try:  # what os.access cannot see: read-only mounts, special file systems (root passes every access check)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise ArgumentError(f"{name} {path}: folder {parent} is not writable ({e.strerror or e})") from None


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_tree(root: str) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync(os.path.join(folder, name))
        _fsync(folder)


def _failed(path: str, existed: bool, error: BaseException) -> OutputError:
    kept = "the existing file is untouched" if existed else "nothing was written"
    return OutputError(f"could not write {path} ({kept}): {error}")


@contextlib.contextmanager
def atomic_file(path: str, verify: Callable[[str], None] | None = None) -> Iterator[str]:
    """Yields a temporary path (with `path`'s suffix, so writers that go by it still work) that becomes `path` once
    the block succeeds and `verify(temporary)` passes."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    existed = os.path.exists(path)
    try:
        os.makedirs(parent, exist_ok=True)
        clean_stale_partials(path)
        fd, tmp = tempfile.mkstemp(prefix=f"{_partial_prefix(path)}{os.getpid()}-", suffix=os.path.splitext(path)[1],
                                   dir=parent)
        os.close(fd)
    except OSError as e:
        raise _failed(path, existed, e) from e
    try:
        yield tmp
        _fsync(tmp)
        if verify is not None:
            verify(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        _fsync(parent)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(e, (OSError, ValueError, RuntimeError)) and not isinstance(e, OutputError):
            raise _failed(path, existed, e) from e
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_directory(dst: str, overwrite: bool = False) -> Iterator[str]:
    """Yields a temporary folder beside `dst` that replaces `dst` only if the block succeeds (folder mode from the
    umask, like `os.makedirs`)."""
    dst = os.path.abspath(dst)
    if os.path.exists(dst) and not overwrite:
        raise FileExistsError(f"{dst} already exists; choose another destination or allow overwriting")
    parent = os.path.dirname(dst)
    os.makedirs(parent, exist_ok=True)
    clean_stale_partials(dst)
    tmp = tempfile.mkdtemp(prefix=f"{_partial_prefix(dst)}{os.getpid()}-", dir=parent)
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        _sync_tree(tmp)
        if os.path.exists(dst):
            old = tempfile.mkdtemp(prefix=f"{_partial_prefix(dst)}{os.getpid()}-old-", dir=parent)
            os.rename(dst, os.path.join(old, "x"))
            os.rename(tmp, dst)
            shutil.rmtree(old)
        else:
            os.rename(tmp, dst)
        _fsync(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
