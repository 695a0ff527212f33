"""Conversion tables for the DiT families (dit_spec.md §8)."""

from __future__ import annotations

from pyramid_jax.convert.engine import CONV2D, COPY, LINEAR, ConversionTable, Leaf

# diffusers wraps a few Linears in containers: attn.to_out[0] (then Dropout), ff.net[0].proj (GELU) and ff.net[2].
DIFFUSERS_CONTAINER_RENAMES = (
    (r"\.to_out\.0\.", ".to_out."),
    (r"\.net\.0\.proj\.", ".proj_in."),
    (r"\.net\.2\.", ".proj_out."),
)

# Every other DiT tensor: qk-norm weights -> RMSNorm scale, Linear weights -> Dense kernels, biases as is.
DIT_LEAVES = (
    Leaf(r"(.+\.norm_(?:added_)?[qk])\.weight", r"\1.scale", COPY),
    Leaf(r"(.+)\.weight", r"\1.kernel", LINEAR),
    Leaf(r"(.+)\.bias", r"\1.bias", COPY),
)

FLUX_TABLE = ConversionTable(name="PyramidFluxTransformer", renames=DIFFUSERS_CONTAINER_RENAMES, leaves=DIT_LEAVES)

MMDIT_TABLE = ConversionTable(
    name="PyramidDiffusionMMDiT",
    # The MMDiT names its text qk norms `norm_add_q/k`; our shared JointAttention calls them `norm_added_q/k`.
    renames=DIFFUSERS_CONTAINER_RENAMES + ((r"\.norm_add_([qk])\.", r".norm_added_\1."),),
    leaves=(
        Leaf(r"pos_embed\.pos_embed", "pos_embed.pos_embed", COPY),  # the sincos buffer [1, G*G, D]
        Leaf(r"pos_embed\.proj\.weight", "pos_embed.proj.kernel", CONV2D),
    ) + DIT_LEAVES,
)
