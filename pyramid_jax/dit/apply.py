"""The DiT forward as a model program (`parallel/compiled.py`), for samplers and benchmarks that own their loops:
`dit_forward(PlacedModel(dit, mesh), sample, encoder_hidden_states, encoder_attention_mask, pooled_projections,
timestep_ratio)`."""

from __future__ import annotations

from flax import nnx

from pyramid_jax.parallel.compiled import ModelProgram


@ModelProgram
def dit_forward(dit: nnx.Module, sample, encoder_hidden_states, encoder_attention_mask, pooled_projections,
                timestep_ratio):
    return dit(sample, encoder_hidden_states, encoder_attention_mask, pooled_projections, timestep_ratio)
