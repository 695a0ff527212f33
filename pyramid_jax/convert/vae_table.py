"""Conversion table of the causal video VAE (vae_spec.md §2).

The torch `CausalConv3d` wraps an `nn.Conv3d` named `conv`, and each sampler sits alone in a one-element list;
our modules hold the kernel directly and name each sampler once (`spatial_downsample`, `temporal_upsample`, ...).
"""

from __future__ import annotations

from pyramid_jax.convert.dit_tables import DIFFUSERS_CONTAINER_RENAMES
from pyramid_jax.convert.engine import CONV3D, COPY, LINEAR, ConversionTable, Leaf

VAE_TABLE = ConversionTable(
    name="CausalVideoVAE",
    renames=DIFFUSERS_CONTAINER_RENAMES + (
        (r"\.downsamplers\.0\.conv\.", ".spatial_downsample."),
        (r"\.temporal_downsamplers\.0\.conv\.", ".temporal_downsample."),
        (r"\.upsamplers\.0\.conv\.", ".spatial_upsample."),
        (r"\.temporal_upsamplers\.0\.conv\.", ".temporal_upsample."),
        (r"\.attentions\.0\.", ".attention."),
    ),
    leaves=(
        Leaf(r"(.+)\.conv\.weight", r"\1.kernel", CONV3D),
        Leaf(r"(.+)\.conv\.bias", r"\1.bias", COPY),
        Leaf(r"(.+\.to_[qkv]|.+\.to_out)\.weight", r"\1.kernel", LINEAR),
        Leaf(r"(.+)\.weight", r"\1.scale", COPY),  # GroupNorm
        Leaf(r"(.+)\.bias", r"\1.bias", COPY),
    ),
)
