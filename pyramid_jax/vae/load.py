"""`load_vae`: the causal video VAE from a torch model folder (config.json + weights) or a converted folder."""

from __future__ import annotations

import json
import os

import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from pyramid_jax.config import ConfigError
from pyramid_jax.convert.sources import open_torch_checkpoint
from pyramid_jax.convert.vae_table import VAE_TABLE
from pyramid_jax.io import weights
from pyramid_jax.parallel.rules import LOGICAL_AXIS_RULES, Rules
from pyramid_jax.vae.config import VAEConfig
from pyramid_jax.vae.model import CausalVideoVAE

# What the pipeline passes to `CausalVideoVAE.from_pretrained` on top of config.json (vae_spec.md §4.5).
PIPELINE_LOAD_OVERRIDES = dict(interpolate=False)


def vae_config_from_dict(values: dict, **overrides) -> VAEConfig:
    """The effective config: `values` (a parsed config.json), the pipeline's load-time values, then `overrides`."""
    class_name = values.get("_class_name", VAEConfig.CLASS_NAME)
    if class_name != VAEConfig.CLASS_NAME:
        raise ConfigError(f"config `_class_name` is {class_name!r}; expected {VAEConfig.CLASS_NAME!r}")
    return VAEConfig.from_dict(values, **{**PIPELINE_LOAD_OVERRIDES, **overrides})


def vae_config_to_dict(config: VAEConfig) -> dict:
    """The JSON form written next to converted weights (round-trips through `vae_config_from_dict`)."""
    return {"_class_name": config.CLASS_NAME, **config.to_dict()}


def read_vae_config(path: str, **overrides) -> VAEConfig:
    config_path = os.path.join(path, weights.CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"no {weights.CONFIG_FILE} in VAE folder {path}")
    with open(config_path) as f:
        return vae_config_from_dict(json.load(f), **overrides)


def abstract_vae(config: VAEConfig, dtype=jnp.float32):
    """(graphdef, abstract state) of the VAE for `config`, with parameters stored and computed in `dtype`."""
    return weights.abstract_module(lambda: CausalVideoVAE(config, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=dtype))


def load_vae(path: str, dtype=jnp.float32, mesh: Mesh | None = None, *, allow_pickle: bool = False,
             rules: Rules = LOGICAL_AXIS_RULES, progress=iter, **overrides) -> CausalVideoVAE:
    """Loads the VAE, sharded over `mesh` by `rules` when given (inputs are then split by batch and height).

    `path` is a torch VAE folder (e.g. `<snapshot>/causal_video_vae`; the released `.bin` needs
    `allow_pickle=True`) or a folder written by `convert_torch_weights.py`.
    """
    config = read_vae_config(path, **overrides)
    graphdef, abstract = abstract_vae(config, dtype)
    if weights.is_converted(path):
        arrays = weights.converted_arrays(path, abstract, mesh, rules)
    else:
        source = open_torch_checkpoint(path, allow_pickle=allow_pickle)
        arrays = weights.torch_arrays(VAE_TABLE, source, abstract, progress=progress)
    vae = weights.materialize(graphdef, abstract, arrays, mesh, rules)
    vae.mesh = mesh
    return vae
