"""How the fused attention backends give way to the blockwise one: trace-time probes and a warning logged once."""

from __future__ import annotations

import functools
import logging

import jax
import numpy as np

log = logging.getLogger("pyramid_jax.layers.attention")


@functools.cache
def log_once(message: str) -> None:
    log.warning(message)


def static_array(x) -> np.ndarray | None:
    """`x` as a numpy array when it is known at trace time, else None."""
    try:
        return np.asarray(x)
    except jax.errors.TracerArrayConversionError:
        return None
