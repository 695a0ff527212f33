"""The released DiT config.json files (dit_spec.md §1), with the pipeline's load-time values filled in."""

from pyramid_jax.dit.config import dit_config_from_dict

# rain1011/pyramid-flow-miniflux diffusion_transformer_{384p,768p,image}/config.json (one architecture).
MINIFLUX_DIT = dict(
    _class_name="PyramidFluxTransformer", attention_head_dim=64, axes_dims_rope=[16, 24, 24], in_channels=64,
    interp_condition_pos=True, joint_attention_dim=4096, num_attention_heads=30, num_layers=8, num_single_layers=16,
    patch_size=1, pooled_projection_dim=768, use_flash_attn=False, use_gradient_checkpointing=False,
    use_temporal_causal=True)

# rain1011/pyramid-flow-sd3 diffusion_transformer_{384p,768p}/config.json.
SD3_DIT = dict(
    _class_name="PyramidDiffusionMMDiT", attention_head_dim=64, caption_projection_dim=1536, in_channels=16,
    joint_attention_dim=4096, max_num_frames=200, num_attention_heads=24, num_layers=24, patch_size=2,
    pooled_projection_dim=2048, pos_embed_max_size=192, pos_embed_type="sincos", qk_norm="rms_norm", sample_size=128,
    use_flash_attn=False, use_gradient_checkpointing=False, use_temporal_causal=True)


def miniflux_dit():
    return dit_config_from_dict(MINIFLUX_DIT)


def sd3_dit():
    return dit_config_from_dict(SD3_DIT)
