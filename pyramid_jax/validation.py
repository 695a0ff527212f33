"""Argument checks shared by the pipeline API and the CLIs: each fails with an `ArgumentError` naming the argument.

Nothing is coerced silently: a bool is not an integer, 64.0 is not a pixel count, "4" is not a guidance scale, NaN is
not a number anyone meant, and 0 steps is an error rather than "use the default".
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

from pyramid_jax.errors import ArgumentError

MAX_SEED = 2 ** 63 - 1


def _describe(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def integer(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` as an int, if it is an integer (not a bool or a float) in `minimum..maximum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentError(f"{name} must be an integer; got {_describe(value)}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bound = (f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}") if minimum is not None \
            else f"<= {maximum}"
        raise ArgumentError(f"{name} must be an integer in {bound}; got {value}")
    return value


def real(value, name: str, minimum: float | None = None) -> float:
    """`value` as a finite float (ints allowed, bools and strings not), at least `minimum` when given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentError(f"{name} must be a number; got {_describe(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ArgumentError(f"{name} must be a finite number; got {value}")
    if minimum is not None and value < minimum:
        raise ArgumentError(f"{name} must be at least {minimum}; got {value}")
    return value


def step_counts(steps, name: str, stages: int) -> tuple[int, ...]:
    """One positive Euler-step count per stage (a single integer applies to every stage); 0 is an error."""
    if isinstance(steps, numbers.Integral) and not isinstance(steps, bool):
        steps = (steps,) * stages
    elif isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
        raise ArgumentError(f"{name} must be a positive integer or {stages} of them; got {_describe(steps)}")
    if len(steps) != stages:
        raise ArgumentError(f"{name} must be a positive integer or {stages} of them (one per stage); got {list(steps)}")
    return tuple(integer(s, f"{name} (stage {i})", minimum=1) for i, s in enumerate(steps))


def text(value, name: str) -> str:
    if not isinstance(value, str):
        raise ArgumentError(f"{name} must be a string; got {_describe(value)}")
    return value


def seed(value, name: str = "seed") -> int:
    return integer(value, name, 0, MAX_SEED)


def seed_key(value, name: str = "seed"):
    """The PRNG key of a seed in 0..2^63-1: every seed its own stream (a seed below 2^32 gives `jax.random.key`'s).

    The 64-bit seed is split into the two 32-bit words of a threefry key, as `jax.random.key` does with x64 on, so
    2^32 and 0 differ although JAX's default 32-bit mode would fold them together.
    """
    import jax
    import numpy as np

    value = seed(value, name)
    if value < 2 ** 32:
        return jax.random.key(value)
    key = jax.random.key(0)
    if jax.random.key_data(key).shape != (2,):  # not threefry: fold the high word in
        return jax.random.fold_in(jax.random.key(value & 0xFFFFFFFF), value >> 32)
    return jax.random.wrap_key_data(np.array([value >> 32, value & 0xFFFFFFFF], np.uint32),
                                    impl=jax.random.key_impl(key))
