"""JAX's persistent compilation cache: compiled programs are kept on disk, so a later run loads them instead of
compiling again (the sampler and the AR train step compile one program per history bucket, which dominates a short
run). Every CLI takes `--compile-cache DIR` / `--no-compile-cache`
(`add_compile_cache_flags`) and logs each program's compile seconds (`log_compile_times`); `compile_records` keeps
them (`parallel/compiled.py` reports them for each model program)."""

from __future__ import annotations

import argparse
import os
from typing import Callable, NamedTuple

import jax
from jax import monitoring

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # jax._src.dispatch.BACKEND_COMPILE_EVENT
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


def default_cache_dir() -> str:
    """`$JAX_COMPILATION_CACHE_DIR` if set, else `$XDG_CACHE_HOME/pyramid_jax/xla` (`~/.cache/pyramid_jax/xla`)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.join(base, "pyramid_jax", "xla")


def enable_compile_cache(path: str) -> None:
    """Caches every program compiled from now on in folder `path`, however fast it compiled (JAX's default skips
    programs under 1 s, which would leave small models and short runs recompiling)."""
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def add_compile_cache_flags(parser: argparse.ArgumentParser) -> None:
    """`--compile-cache DIR` and `--no-compile-cache`; `setup_compile_cache(args)` acts on them."""
    parser.add_argument("--compile-cache", metavar="DIR", help="persistent compilation cache folder "
                        "(default: $JAX_COMPILATION_CACHE_DIR or ~/.cache/pyramid_jax/xla)")
    parser.add_argument("--no-compile-cache", action="store_true", help="compile everything afresh, save nothing")


def setup_compile_cache(args: argparse.Namespace, log: Callable[[str], None] | None = print,
                        min_seconds: float = 2.0) -> None:
    """The cache as the flags say (on by default), and compile times logged with `log` (None: not logged)."""
    if not args.no_compile_cache:
        enable_compile_cache(args.compile_cache or default_cache_dir())
    if log is not None:
        log_compile_times(log, min_seconds)


def log_compile_times(log: Callable[[str], None] = print, min_seconds: float = 2.0) -> None:
    """From now on, logs `program <name>: compiled in <s> s` (or `loaded from the compilation cache in ...`) for
    every XLA compilation taking at least `min_seconds`, so a slow first step is seen to be compilation. A second
    call replaces the first's `log` and threshold."""
    track_compile_times()
    _logging.update(log=log, min_seconds=min_seconds)


def track_compile_times() -> None:
    """From now on, records every XLA compilation (`compile_records`), logged or not; idempotent."""
    if not _logging:
        monitoring.register_event_listener(_on_event)
        monitoring.register_event_duration_secs_listener(_on_duration)
        _logging.update(log=None, min_seconds=0.0, cache_hit=False)


_logging: dict = {}  # log (None: not logged), min_seconds, cache_hit (the compilation under way was a cache hit)


def _on_event(event: str, **_) -> None:
    if event == CACHE_HIT_EVENT:
        _logging["cache_hit"] = True


class CompileRecord(NamedTuple):
    name: str
    seconds: float
    cached: bool  # loaded from the persistent cache


def compile_records() -> list[CompileRecord]:
    """Every XLA compilation since `track_compile_times` (or `log_compile_times`) was first called, oldest first."""
    return list(_records)


_records: list[CompileRecord] = []


def _on_duration(event: str, seconds: float, fun_name: str = "?", **_) -> None:
    if event != BACKEND_COMPILE_EVENT:
        return
    cached, _logging["cache_hit"] = _logging["cache_hit"], False
    _records.append(CompileRecord(fun_name, seconds, cached))
    if _logging["log"] is not None and seconds >= _logging["min_seconds"]:
        how = "loaded from the compilation cache" if cached else "compiled"
        _logging["log"](f"program {fun_name}: {how} in {seconds:.1f} s")
