"""Conversion tables for the transformers text encoders in a snapshot's `text_encoder*/` folders."""

from __future__ import annotations

from pyramid_jax.convert.engine import COPY, LINEAR, ConversionTable, Leaf

# CLIPTextModel saves its tensors bare (transformers >= 5) or under `text_model.` (older versions, and always in
# CLIPTextModelWithProjection); the projection sits beside `text_model`.
CLIP_TABLE = ConversionTable(
    name="CLIPTextModel",
    renames=(
        (r"^text_model\.", ""),
        (r"^embeddings\.", ""),
        (r"^encoder\.layers\.", "layers."),
        (r"\.self_attn\.([qkv])_proj\.", r".self_attn.\1."),
        (r"\.self_attn\.out_proj\.", ".self_attn.o."),
        (r"\.mlp\.fc1\.", ".mlp.wi."),
        (r"\.mlp\.fc2\.", ".mlp.wo."),
    ),
    leaves=(
        Leaf(r"(token_embedding|position_embedding)\.weight", r"\1.embedding", COPY),
        Leaf(r"(.*layer_norm\d?)\.weight", r"\1.scale", COPY),
        Leaf(r"(.+)\.weight", r"\1.kernel", LINEAR),
        Leaf(r"(.+)\.bias", r"\1.bias", COPY),
    ),
    # `position_ids`: an arange buffer saved by transformers < 4.31.
    ignored=(r"(text_model\.)?embeddings\.position_ids",),
)

T5_TABLE = ConversionTable(
    name="T5EncoderModel",
    renames=(
        (r"^encoder\.block\.0\.layer\.0\.SelfAttention\.relative_attention_bias\.", "relative_attention_bias."),
        (r"^encoder\.block\.(\d+)\.layer\.0\.SelfAttention\.", r"blocks.\1.attention."),
        (r"^encoder\.block\.(\d+)\.layer\.0\.layer_norm\.", r"blocks.\1.attention_norm."),
        (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.(wi|wi_0)\.", r"blocks.\1.ffn.wi."),
        (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wi_1\.", r"blocks.\1.ffn.wi_linear."),
        (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wo\.", r"blocks.\1.ffn.wo."),
        (r"^encoder\.block\.(\d+)\.layer\.1\.layer_norm\.", r"blocks.\1.ffn_norm."),
        (r"^encoder\.final_layer_norm\.", "final_layer_norm."),
    ),
    leaves=(
        Leaf(r"(shared|relative_attention_bias)\.weight", r"\1.embedding", COPY),
        Leaf(r"(.*_norm)\.weight", r"\1.scale", COPY),
        Leaf(r"(.+)\.weight", r"\1.kernel", LINEAR),
    ),
    # `encoder.embed_tokens.weight` is tied to `shared.weight`.
    ignored=(r"encoder\.embed_tokens\.weight",),
)
