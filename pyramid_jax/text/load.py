"""`load_text_model`: one CLIP or T5 encoder from a transformers folder (config.json + weights) or a converted one."""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from pyramid_jax.convert.engine import ConversionTable
from pyramid_jax.convert.text_tables import CLIP_TABLE, T5_TABLE
from pyramid_jax.io.model_kind import ModelKind
from pyramid_jax.parallel.rules import LOGICAL_AXIS_RULES, Rules
from pyramid_jax.text.clip import CLIPTextModel
from pyramid_jax.text.config import CLIPTextConfig, T5EncoderConfig, text_config_from_dict, text_config_to_dict
from pyramid_jax.text.t5 import T5Encoder

# config class -> (module class, torch conversion table)
TEXT_MODELS: dict[type, tuple[Callable, ConversionTable]] = {
    CLIPTextConfig: (CLIPTextModel, CLIP_TABLE),
    T5EncoderConfig: (T5Encoder, T5_TABLE),
}


TEXT = ModelKind("text encoder", text_config_from_dict, text_config_to_dict, lambda config: TEXT_MODELS[type(config)])
read_text_config = TEXT.read_config


def load_text_model(path: str, dtype=jnp.float32, mesh: Mesh | None = None, *, allow_pickle: bool = False,
                    rules: Rules = LOGICAL_AXIS_RULES, progress=iter) -> nnx.Module:
    """Loads `CLIPTextModel` or `T5Encoder` (by the folder's `model_type`), sharded over `mesh` when given.

    `path` is a transformers model folder (e.g. `<snapshot>/text_encoder_2`; fp32/fp16/bf16, sharded or not) or a
    folder written by `convert_torch_weights.py`.
    """
    return TEXT.load(path, dtype, mesh, allow_pickle=allow_pickle, rules=rules, progress=progress)
