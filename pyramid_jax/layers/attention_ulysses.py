"""A fused attention backend on a mesh: `shard_map` by the rule table, with a head-parallel all-to-all (Ulysses).

XLA cannot partition a custom kernel, and a blockwise scan over tokens split on `sequence` would gather all of K
and V. So each device takes its batch rows and heads; when the tokens are split (logical axis `length`), an
all-to-all trades the token split for a head split before the backend runs on the whole sequence and back after:
each device moves O(N H d / devices), never the full K/V, and holds no `[N, N]` scores. Heads that the token
axes do not divide are padded with zero heads. The mask vectors are O(N) and go to every device whole.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from pyramid_jax.layers.attention_fallback import static_array
from pyramid_jax.parallel.rules import logical_to_spec

QKV_AXES = ("batch", "length", "heads", "head_dim")


def _axes(entry) -> tuple[str, ...]:
    return () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)


def sequence_parallel_attention(backend: Callable, q, k, v, mask, scale: float, mesh) -> jax.Array:
    """`backend(q, k, v, mask, scale)` for `[B, N, H, d]` inputs laid out by the rules on the abstract `mesh`."""
    spec = logical_to_spec(QKV_AXES, q.shape, mesh)
    batch, tokens = spec[0], _axes(spec[1])
    row_spec = P(batch, None)
    frame = static_array(mask.frame) if mask.frame is not None else None
    traced_frame = mask.frame if mask.frame is not None and frame is None else None

    def local(q, k, v, valid, query_valid, traced_frame):
        shards = math.prod(mesh.shape[a] for a in tokens)
        heads = q.shape[2]
        if shards > 1:
            pad = [(0, 0), (0, 0), (0, -heads % shards), (0, 0)]
            q, k, v = (jax.lax.all_to_all(jnp.pad(x, pad), tokens, 2, 1, tiled=True) for x in (q, k, v))
        local_mask = mask.replace(valid=valid, query_valid=query_valid,
                                  frame=traced_frame if frame is None else frame)
        out = backend(q, k, v, local_mask, scale)
        if shards > 1:
            out = jax.lax.all_to_all(out, tokens, 1, 2, tiled=True)[:, :, :heads]
        return out

    rows = lambda x: None if x is None else jnp.broadcast_to(x, q.shape[:2])  # noqa: E731
    return jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, spec, row_spec, row_spec, P()), out_specs=spec,
                         check_vma=False)(q, k, v, rows(mask.valid), rows(mask.query_valid), traced_frame)
