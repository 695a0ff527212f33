"""`load_text_model`: one CLIP or T5 encoder from a transformers folder (config.json + weights) or a converted one."""

from __future__ import annotations

import json
import os
from typing import Callable, Iterator

import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from pyramid_jax.config import FrozenConfig
from pyramid_jax.convert.engine import ConversionTable, Path
from pyramid_jax.convert.sources import open_torch_checkpoint
from pyramid_jax.convert.text_tables import CLIP_TABLE, T5_TABLE
from pyramid_jax.io import weights
from pyramid_jax.parallel.rules import LOGICAL_AXIS_RULES, Rules
from pyramid_jax.text.clip import CLIPTextModel
from pyramid_jax.text.config import CLIPTextConfig, T5EncoderConfig, text_config_from_dict
from pyramid_jax.text.t5 import T5Encoder

# config class -> (module class, torch conversion table)
TEXT_MODELS: dict[type, tuple[Callable, ConversionTable]] = {
    CLIPTextConfig: (CLIPTextModel, CLIP_TABLE),
    T5EncoderConfig: (T5Encoder, T5_TABLE),
}


def read_text_config(path: str) -> FrozenConfig:
    config_path = os.path.join(path, weights.CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"no {weights.CONFIG_FILE} in text encoder folder {path}")
    with open(config_path) as f:
        return text_config_from_dict(json.load(f))


def abstract_text_model(config: FrozenConfig, dtype=jnp.float32):
    """(graphdef, abstract state) of the encoder for `config`, stored and computed in `dtype`."""
    model_cls, _ = TEXT_MODELS[type(config)]
    return weights.abstract_module(lambda: model_cls(config, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=dtype))


def torch_text_arrays(path: str, config: FrozenConfig, abstract: nnx.State, *, allow_pickle: bool = False,
                      dtype=None, progress=iter) -> Iterator[tuple[Path, np.ndarray]]:
    """The converted tensors of the transformers folder `path` (all shards), checked against `abstract` first."""
    _, table = TEXT_MODELS[type(config)]
    source = open_torch_checkpoint(path, allow_pickle=allow_pickle)
    return weights.torch_arrays(table, source, abstract, dtype=dtype, progress=progress)


def load_text_model(path: str, dtype=jnp.float32, mesh: Mesh | None = None, *, allow_pickle: bool = False,
                    rules: Rules = LOGICAL_AXIS_RULES, progress=iter) -> nnx.Module:
    """Loads `CLIPTextModel` or `T5Encoder` (by the folder's `model_type`), sharded over `mesh` when given.

    `path` is a transformers model folder (e.g. `<snapshot>/text_encoder_2`; fp32/fp16/bf16, sharded or not) or a
    folder written by `convert_torch_weights.py`.
    """
    config = read_text_config(path)
    graphdef, abstract = abstract_text_model(config, dtype)
    if weights.is_converted(path):
        arrays = weights.converted_arrays(path, abstract, mesh, rules)
    else:
        arrays = torch_text_arrays(path, config, abstract, allow_pickle=allow_pickle, progress=progress)
    return weights.materialize(graphdef, abstract, arrays, mesh, rules)
