"""Configs of the two text-encoder architectures, read from transformers' `config.json` (pipeline_spec.md §1)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pyramid_jax.config import ConfigError, FrozenConfig
from pyramid_jax.text.layers import ACTIVATION_FNS

# Keys every transformers config.json carries that describe the file, not the network. `dtype`/`torch_dtype` is
# the saved precision: the caller picks the load dtype, as `from_pretrained(torch_dtype=...)` does.
_TRANSFORMERS_BOOKKEEPING = frozenset({"transformers_version", "dtype", "torch_dtype", "model_type"})

ACTIVATIONS = tuple(ACTIVATION_FNS)  # the `ACT2FN` names that released CLIP and T5 configs use


@dataclasses.dataclass(frozen=True)
class CLIPTextConfig(FrozenConfig):
    """`CLIPTextModel` / `CLIPTextModelWithProjection` (`model_type` "clip_text_model")."""

    MODEL_TYPE: ClassVar[str] = "clip_text_model"
    # Token ids the tokenizer (not the model) uses; dropout and init settings (inference only, weights loaded).
    # `architectures` is read once, into `with_projection`, by `text_config_from_dict`.
    IGNORED_FIELDS: ClassVar[frozenset[str]] = _TRANSFORMERS_BOOKKEEPING | {
        "architectures", "pad_token_id", "bos_token_id", "attention_dropout", "dropout", "initializer_range",
        "initializer_factor"}

    vocab_size: int = 49408
    hidden_size: int = 768
    intermediate_size: int = 3072
    projection_dim: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    eos_token_id: int = 2
    with_projection: bool = False  # CLIPTextModelWithProjection: a bias-free `text_projection` after pooling

    def __post_init__(self):
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(f"CLIPTextConfig.hidden_act {self.hidden_act!r} is not one of {ACTIVATIONS}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"CLIPTextConfig.hidden_size {self.hidden_size} is not a multiple of "
                              f"num_attention_heads {self.num_attention_heads}")


@dataclasses.dataclass(frozen=True)
class T5EncoderConfig(FrozenConfig):
    """`T5EncoderModel` (`model_type` "t5"): the encoder stack of T5 v1.1 (XXL in the released snapshots)."""

    MODEL_TYPE: ClassVar[str] = "t5"
    # Decoder, generation and tokenizer settings; dropout and init (inference only); `dense_act_fn` and
    # `is_gated_act`, which transformers re-derives from `feed_forward_proj` (so do we: `activation`, `gated`);
    # `tie_word_embeddings`/`scale_decoder_outputs` only affect the LM head.
    IGNORED_FIELDS: ClassVar[frozenset[str]] = _TRANSFORMERS_BOOKKEEPING | {
        "architectures", "num_decoder_layers", "decoder_start_token_id", "is_decoder", "is_encoder_decoder",
        "use_cache", "output_past", "pad_token_id", "eos_token_id", "dropout_rate", "classifier_dropout",
        "initializer_factor", "dense_act_fn", "is_gated_act", "tie_word_embeddings", "scale_decoder_outputs"}

    vocab_size: int = 32128
    d_model: int = 4096
    d_kv: int = 64
    d_ff: int = 10240
    num_layers: int = 24
    num_heads: int = 64
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "gated-gelu"

    def __post_init__(self):
        parts = self.feed_forward_proj.split("-")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated") or self.activation not in ACTIVATIONS:
            raise ConfigError(f"T5EncoderConfig.feed_forward_proj {self.feed_forward_proj!r} must be ACT or "
                              f"gated-ACT with ACT one of {ACTIVATIONS}")

    @property
    def gated(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")

    @property
    def activation(self) -> str:
        """The FFN activation; legacy "gated-gelu" means the tanh GELU, as in transformers."""
        return "gelu_new" if self.feed_forward_proj == "gated-gelu" else self.feed_forward_proj.split("-")[-1]


TEXT_CONFIGS: dict[str, type[FrozenConfig]] = {c.MODEL_TYPE: c for c in (CLIPTextConfig, T5EncoderConfig)}


def text_config_from_dict(values: dict[str, Any], **overrides) -> FrozenConfig:
    """The config for a transformers `config.json` (or one we wrote), picked by its `model_type`."""
    kind = values.get("model_type")
    if kind not in TEXT_CONFIGS:
        raise ConfigError(f"text encoder config `model_type` is {kind!r}; supported: {sorted(TEXT_CONFIGS)}")
    if kind == CLIPTextConfig.MODEL_TYPE and "with_projection" not in values:
        values = {**values, "with_projection": "CLIPTextModelWithProjection" in values.get("architectures", ())}
    return TEXT_CONFIGS[kind].from_dict(values, **overrides)


def text_config_to_dict(config: FrozenConfig) -> dict[str, Any]:
    """The JSON form written next to converted weights (round-trips through `text_config_from_dict`)."""
    return {"model_type": config.MODEL_TYPE, **config.to_dict()}

