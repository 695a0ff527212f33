"""The DiT as a pure jitted function of (state, inputs), for samplers and benchmarks that own their loops."""

from __future__ import annotations

import jax
from flax import nnx


def dit_apply_fn(graphdef: nnx.GraphDef):
    """`apply(state, sample, encoder_hidden_states, encoder_attention_mask, pooled_projections, timestep_ratio)`.

    jit caches one program per input shape signature; `apply._cache_size()` counts the compiled programs.
    """

    @jax.jit
    def apply(state, sample, encoder_hidden_states, encoder_attention_mask, pooled_projections, timestep_ratio):
        model = nnx.merge(graphdef, state)
        return model(sample, encoder_hidden_states, encoder_attention_mask, pooled_projections, timestep_ratio)

    return apply
