"""JAX's persistent compilation cache: compiled programs are kept on disk, so a later run loads them instead of
compiling again (the sampler compiles one program per autoregressive unit, which dominates a short run)."""

from __future__ import annotations

import os

import jax


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
