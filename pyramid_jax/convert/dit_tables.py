"""Conversion tables for the DiT families (dit_spec.md §8)."""

from __future__ import annotations

from pyramid_jax.convert.engine import COPY, LINEAR, ConversionTable, Leaf

# diffusers wraps a few Linears in containers: attn.to_out[0] (then Dropout), ff.net[0].proj (GELU) and ff.net[2].
DIFFUSERS_CONTAINER_RENAMES = (
    (r"\.to_out\.0\.", ".to_out."),
    (r"\.net\.0\.proj\.", ".proj_in."),
    (r"\.net\.2\.", ".proj_out."),
)

FLUX_TABLE = ConversionTable(
    name="PyramidFluxTransformer",
    renames=DIFFUSERS_CONTAINER_RENAMES,
    leaves=(
        Leaf(r"(.+\.norm_(?:added_)?[qk])\.weight", r"\1.scale", COPY),
        Leaf(r"(.+)\.weight", r"\1.kernel", LINEAR),
        Leaf(r"(.+)\.bias", r"\1.bias", COPY),
    ),
)
