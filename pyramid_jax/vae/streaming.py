"""Temporal chunking ("streaming", vae_spec.md §4.1) with the causal cache carried explicitly through `lax.scan`.

The reference splits a clip into `[0, window + 1)` and then `window`-frame chunks. Here the first chunk runs
once with no history (causal zero padding) and every later chunk runs as one `lax.scan` step of fixed size, so
the compiled program does not grow with the clip. A short last chunk is zero-padded at its end: the model is
causal in time and per-frame in norm and attention, so frames after the real ones change nothing before them,
and their outputs are cut off.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

# step(chunk [B, t, ...], history or None) -> (output [B, t', ...], history for the next chunk)
Step = Callable[[jax.Array, list | None], tuple[jax.Array, list]]


def stream(step: Step, x: jax.Array, window: int) -> jax.Array:
    """Runs `step` over `x` `[B, T, ...]` chunk by chunk along T and concatenates the outputs along T."""
    first, carry = step(x[:, :window + 1], None)
    rest = x[:, window + 1:]
    num_chunks = -(-rest.shape[1] // window)
    if num_chunks == 0:
        return first
    padded = jnp.pad(rest, [(0, 0), (0, num_chunks * window - rest.shape[1])] + [(0, 0)] * (x.ndim - 2))
    chunks = jnp.moveaxis(padded.reshape(x.shape[0], num_chunks, window, *x.shape[2:]), 1, 0)

    def body(history, chunk):
        out, history = step(chunk, history)
        return history, out

    _, outs = jax.lax.scan(body, carry, chunks)  # [n, B, t', ...]
    per_chunk = outs.shape[2]
    outs = jnp.moveaxis(outs, 0, 1).reshape(x.shape[0], num_chunks * per_chunk, *outs.shape[3:])
    kept = rest.shape[1] * per_chunk // window  # outputs of the real (unpadded) frames
    return jnp.concatenate([first, outs[:, :kept]], axis=1)
