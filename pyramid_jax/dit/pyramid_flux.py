"""`PyramidFluxTransformer` (miniFLUX) as an NNX module; attribute names mirror the torch state dict."""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pyramid_jax.dit.config import FluxConfig
from pyramid_jax.dit.inputs import output_tokens, stage_inputs
from pyramid_jax.dit.joint_block import JointTransformerBlock
from pyramid_jax.dit.single_block import SingleTransformerBlock
from pyramid_jax.dit.tokens import StageLayout, pack_2x2, pad_front, unpack_2x2
from pyramid_jax.layers.adaln import AdaLNContinuous
from pyramid_jax.layers.block_stack import run_blocks
from pyramid_jax.layers.embeddings import TimeTextEmbedding
from pyramid_jax.layers.linear import dense
from pyramid_jax.layers.rope import rope_angles

QK_NORM_EPS = 1e-6


def flux_rope(layout: StageLayout, frame: jax.Array, lead: int, text_len: int, axes_dims: Sequence[int]):
    """RoPE (cos, sin) for [text ; image]: text at (0, 0, 0), image at (frame, row, column) (dit_spec.md §2.7).

    The image tokens' frame ids `frame [lead + N]` may be traced: their angles are gathered from a host-built table
    of every frame id of the layout, so they equal the all-host tables exactly; `lead` masked tokens come first.
    """
    text = rope_angles(np.zeros((text_len, 3), np.float32), axes_dims)
    frames = rope_angles(np.arange(layout.num_frames, dtype=np.float32)[:, None], axes_dims[:1])
    spatial = rope_angles(np.concatenate([np.zeros((lead, 2), np.float32), layout.spatial_positions()]), axes_dims[1:])
    return tuple(jnp.concatenate([t, jnp.concatenate([jnp.take(f, frame, axis=0), s], axis=-1)])
                 for t, f, s in zip(text, frames, spatial))


class PyramidFluxTransformer(nnx.Module):
    """Multi-stage, multi-clip miniFLUX DiT.

    Call with `sample` (a list of stages, each a list of clips `[B, T, H, W, C]`, last clip = current),
    `encoder_hidden_states [B*S, L, J]`, `encoder_attention_mask [B*S, L]`, `pooled_projections [B*S, P]` and
    `timestep_ratio [B*S]` (flow-matching timesteps in (0, 1000]); row b*S + s belongs to sample b, stage s.
    `image_tokens` (optional, one `ImageTokens` per stage) gives runtime frame ids and pad flags (padded histories).
    Returns one `[B, T, H, W, C]` prediction per stage, for that stage's current clip.
    """

    def __init__(self, config: FluxConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        self.config = config
        dim, heads = config.inner_dim, config.num_attention_heads
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.time_text_embed = TimeTextEmbedding(dim, config.pooled_projection_dim, **kw)
        self.context_embedder = dense(config.joint_attention_dim, dim, (None, "embed"), **kw,
                                      kernel_init=nnx.initializers.normal(0.02))
        self.x_embedder = dense(config.in_channels, dim, (None, "embed"), **kw)
        block_kw = dict(backend=config.attention_backend, **kw)
        self.transformer_blocks = nnx.List(
            [JointTransformerBlock(dim, heads, QK_NORM_EPS, **block_kw) for _ in range(config.num_layers)])
        self.single_transformer_blocks = nnx.List(
            [SingleTransformerBlock(dim, heads, QK_NORM_EPS, **block_kw) for _ in range(config.num_single_layers)])
        self.norm_out = AdaLNContinuous(dim, **kw)
        self.proj_out = dense(dim, config.in_channels, ("embed", None), **kw, kernel_init=nnx.initializers.zeros_init())

    def __call__(self, sample, encoder_hidden_states, encoder_attention_mask, pooled_projections, timestep_ratio,
                 image_tokens=None):
        cfg = self.config
        layouts, image_tokens, leads, temb, text, masks, groups = stage_inputs(
            sample, cfg.latent_channels, cfg.use_temporal_causal, self.time_text_embed, self.context_embedder,
            encoder_hidden_states, encoder_attention_mask, pooled_projections, timestep_ratio, image_tokens)
        ropes = [flux_rope(layout, image.frame, lead, text[0].shape[1], cfg.axes_dims_rope)
                 for layout, image, lead in zip(layouts, image_tokens, leads)]
        sample = groups.merge(sample)  # alike stages as one batch
        image = [pad_front(self.x_embedder(jnp.concatenate([pack_2x2(clip) for clip in clips], axis=1)), lead)
                 for clips, lead in zip(sample, leads)]

        def double_stream(call, streams):
            out = [call(h, c, t, r, m) for h, c, t, r, m in zip(*streams, temb, ropes, masks)]
            return [o[0] for o in out], [o[1] for o in out]

        def single_stream(call, joint, last=False):
            return [call(x, t, r, m, **(dict(queries=output_tokens(layout, x.shape[1])) if last else {}))
                    for x, t, r, m, layout in zip(joint, temb, ropes, masks, layouts)]

        # The last block computes only the current clip's tokens, the DiT's output, so it runs outside the stack.
        stack = dict(remat_policy=cfg.remat_policy, scan=cfg.scan_layers)
        image, text = run_blocks(self.transformer_blocks, (image, text), double_stream, **stack)
        joint = [jnp.concatenate([c, h], axis=1) for c, h in zip(text, image)]
        *full, last = self.single_transformer_blocks
        joint = run_blocks(full, joint, single_stream, **stack)
        joint = run_blocks([last], joint, functools.partial(single_stream, last=True), **stack)

        outputs = []
        for x, t, layout in zip(joint, temb, layouts):
            current = x[:, x.shape[1] - layout.current.num_tokens:]
            outputs.append(unpack_2x2(self.proj_out(self.norm_out(current, t)), layout.current))
        return groups.split(outputs)

