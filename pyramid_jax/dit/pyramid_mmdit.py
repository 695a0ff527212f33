"""`PyramidDiffusionMMDiT` (SD3-style MM-DiT) as an NNX module; attribute names mirror the torch state dict."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pyramid_jax.dit.config import MMDiTConfig
from pyramid_jax.dit.inputs import output_tokens, stage_inputs
from pyramid_jax.dit.joint_block import JointTransformerBlock
from pyramid_jax.dit.patch_embed import PatchEmbed
from pyramid_jax.dit.tokens import StageLayout, pad_front, unpack_2x2
from pyramid_jax.layers.adaln import AdaLNContinuous
from pyramid_jax.layers.block_stack import run_blocks
from pyramid_jax.layers.embeddings import TimeTextEmbedding
from pyramid_jax.layers.linear import dense
from pyramid_jax.layers.rope import rope_angles

QK_NORM_EPS = 1e-5  # JointAttention's default, never overridden by the MMDiT (dit_spec.md §2.1)


def temporal_rope(layout: StageLayout, frame: jax.Array, text_len: int, head_dim: int, enabled: bool = True):
    """1-axis RoPE (cos, sin) over the whole head dim for [text ; image]: text at frame 0, image at its frame id.

    The image tokens' frame ids `frame [N]` (masked lead tokens included) may be traced: they are gathered from a
    host-built table of the layout's frame ids. Disabled (`add_temp_pos_embed=False`), every angle is 0, i.e. the rotation is the identity.
    """
    table = rope_angles(np.arange(layout.num_frames, dtype=np.float32)[:, None], (head_dim,))
    frame = frame if enabled else jnp.zeros_like(frame)
    return tuple(jnp.concatenate([jnp.broadcast_to(t[:1], (text_len, t.shape[1])), jnp.take(t, frame, axis=0)])
                 for t in table)


class PyramidDiffusionMMDiT(nnx.Module):
    """Multi-stage, multi-clip SD3-style DiT: joint blocks, additive 2-D sincos positions and temporal RoPE.

    Same call as `PyramidFluxTransformer`: `sample` (a list of stages, each a list of clips `[B, T, H, W, C]`,
    last clip = current), `encoder_hidden_states [B*S, L, J]`, `encoder_attention_mask [B*S, L]`,
    `pooled_projections [B*S, P]` and `timestep_ratio [B*S]`; row b*S + s belongs to sample b, stage s;
    optional `image_tokens` (runtime frame ids and pad flags per stage, for padded histories).
    Returns one `[B, T, H, W, C]` prediction per stage, for that stage's current clip.
    """

    def __init__(self, config: MMDiTConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        self.config = config
        dim, heads, last = config.inner_dim, config.num_attention_heads, config.num_layers - 1
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.pos_embed = PatchEmbed(config.in_channels, dim, config.patch_size, config.pos_embed_max_size,
                                    config.base_size, interp_condition_pos=config.interp_condition_pos, **kw)
        self.time_text_embed = TimeTextEmbedding(dim, config.pooled_projection_dim, **kw)
        self.context_embedder = dense(config.joint_attention_dim, config.caption_projection_dim, (None, "embed"), **kw,
                                      kernel_init=nnx.initializers.normal(0.02))
        self.transformer_blocks = nnx.List([
            JointTransformerBlock(dim, heads, QK_NORM_EPS, context_pre_only=i == last,
                                  backend=config.attention_backend, **kw)
            for i in range(config.num_layers)])
        self.norm_out = AdaLNContinuous(dim, **kw)
        self.proj_out = dense(dim, config.patch_size ** 2 * config.in_channels, ("embed", None), **kw,
                              kernel_init=nnx.initializers.zeros_init())

    def __call__(self, sample, encoder_hidden_states, encoder_attention_mask, pooled_projections, timestep_ratio,
                 image_tokens=None):
        cfg = self.config
        layouts, image_tokens, leads, temb, text, masks, groups = stage_inputs(
            sample, cfg.latent_channels, cfg.use_temporal_causal, self.time_text_embed, self.context_embedder,
            encoder_hidden_states, encoder_attention_mask, pooled_projections, timestep_ratio, image_tokens)
        text_len = text[0].shape[1]
        ropes = [temporal_rope(layout, image.frame, text_len, cfg.attention_head_dim, cfg.add_temp_pos_embed)
                 for layout, image in zip(layouts, image_tokens)]
        sample = groups.merge(sample)  # alike stages as one batch
        image = [pad_front(self.pos_embed(clips, layout), lead) for clips, layout, lead in zip(sample, layouts, leads)]

        def joint_stream(call, streams, last=False):
            out = [call(h, c, t, r, m, **(dict(queries=output_tokens(layout, h.shape[1])) if last else {}))
                   for h, c, t, r, m, layout in zip(*streams, temb, ropes, masks, layouts)]
            return [o[0] for o in out], [o[1] for o in out]

        # The last block ends the text stream (its text output is None) and computes only the current clip's image
        # tokens (the DiT's output), so it runs outside the stack.
        stack = dict(remat_policy=cfg.remat_policy, scan=cfg.scan_layers)
        *full, last = self.transformer_blocks
        streams = run_blocks(full, (image, text), joint_stream, **stack)
        image, _ = run_blocks([last], streams, functools.partial(joint_stream, last=True), **stack)

        outputs = []
        for h, t, layout in zip(image, temb, layouts):
            current = h[:, h.shape[1] - layout.current.num_tokens:]
            outputs.append(unpack_2x2(self.proj_out(self.norm_out(current, t)), layout.current))
        return groups.split(outputs)
