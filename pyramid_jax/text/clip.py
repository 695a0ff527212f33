"""CLIP text transformer (`CLIPTextModel`, `CLIPTextModelWithProjection`) as an NNX module."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from pyramid_jax.layers.attention import TokenMask
from pyramid_jax.layers.linear import dense
from pyramid_jax.text.config import CLIPTextConfig
from pyramid_jax.text.layers import MLP, SelfAttention, embedding, norm

# Configs that still say eos_token_id == 2 (all released CLIPs) pool at the largest token id, which is
# `<|endoftext|>` in CLIP's vocabulary; transformers keeps this rule for them and uses the first `eos_token_id`
# occurrence otherwise.
LEGACY_EOS_TOKEN_ID = 2


class CLIPOutput(NamedTuple):
    last_hidden_state: jax.Array  # [B, N, D], after the final LayerNorm
    pooler_output: jax.Array  # [B, D], last_hidden_state at the EOS token
    text_embeds: jax.Array | None  # [B, P], pooler_output @ text_projection (with_projection only)


class CLIPLayer(nnx.Module):
    """Pre-norm block: x + attn(LN1 x) (causal), then x + MLP(LN2 x)."""

    def __init__(self, config: CLIPTextConfig, *, rngs: nnx.Rngs, dtype, param_dtype):
        dim, heads, eps = config.hidden_size, config.num_attention_heads, config.layer_norm_eps
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.layer_norm1 = norm(dim, eps, centered=True, rngs=rngs, param_dtype=param_dtype)
        self.self_attn = SelfAttention(dim, heads, dim // heads, use_bias=True, **kw)
        self.layer_norm2 = norm(dim, eps, centered=True, rngs=rngs, param_dtype=param_dtype)
        self.mlp = MLP(dim, config.intermediate_size, config.hidden_act, gated=False, use_bias=True, **kw)

    def __call__(self, x: jax.Array, mask: TokenMask) -> jax.Array:
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPTextModel(nnx.Module):
    """input_ids `[B, N]` (N <= max_position_embeddings) -> `CLIPOutput`. No padding mask: the reference passes
    none, and causal attention keeps the pads after EOS from reaching any earlier token."""

    def __init__(self, config: CLIPTextConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        self.config = config
        dim = config.hidden_size
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.token_embedding = embedding(config.vocab_size, dim, ("vocab", "embed"), **kw)
        self.position_embedding = embedding(config.max_position_embeddings, dim, (None, "embed"), **kw)
        self.layers = nnx.List([CLIPLayer(config, **kw) for _ in range(config.num_hidden_layers)])
        self.final_layer_norm = norm(dim, config.layer_norm_eps, centered=True, rngs=rngs, param_dtype=param_dtype)
        self.text_projection = (dense(dim, config.projection_dim, ("embed", None), use_bias=False, **kw)
                                if config.with_projection else None)

    def __call__(self, input_ids: jax.Array) -> CLIPOutput:
        batch, length = input_ids.shape
        if length > self.config.max_position_embeddings:
            raise ValueError(f"CLIP input has {length} tokens; the model takes at most "
                             f"{self.config.max_position_embeddings}")
        positions = jnp.arange(length)
        x = self.token_embedding(input_ids) + self.position_embedding(positions)
        causal = TokenMask(jnp.ones((batch, length), bool), frame=positions)
        for layer in self.layers:
            x = layer(x, causal)
        x = self.final_layer_norm(x)
        eos = self.config.eos_token_id
        eos_index = jnp.argmax(input_ids if eos == LEGACY_EOS_TOKEN_ID else input_ids == eos, axis=-1)
        pooled = jnp.take_along_axis(x, eos_index[:, None, None], axis=1)[:, 0]
        projected = None if self.text_projection is None else self.text_projection(pooled)
        return CLIPOutput(x, pooled, projected)
