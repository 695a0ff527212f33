"""`load_vae`: the causal video VAE from a torch model folder (config.json + weights) or a converted folder."""

from __future__ import annotations

import jax.numpy as jnp
from jax.sharding import Mesh

from pyramid_jax.config import ConfigError
from pyramid_jax.convert.vae_table import VAE_TABLE
from pyramid_jax.io.model_kind import ModelKind
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


VAE = ModelKind("VAE", vae_config_from_dict, vae_config_to_dict, lambda config: (CausalVideoVAE, VAE_TABLE))
read_vae_config = VAE.read_config
abstract_vae = VAE.abstract


def load_vae(path: str, dtype=jnp.float32, mesh: Mesh | None = None, *, allow_pickle: bool = False,
             rules: Rules = LOGICAL_AXIS_RULES, progress=iter, **overrides) -> CausalVideoVAE:
    """Loads the VAE, sharded over `mesh` by `rules` when given (inputs are then split by batch and height).

    `path` is a torch VAE folder (e.g. `<snapshot>/causal_video_vae`; the released `.bin` needs
    `allow_pickle=True`) or a folder written by `convert_torch_weights.py`.
    """
    vae = VAE.load(path, dtype, mesh, allow_pickle=allow_pickle, rules=rules, progress=progress, **overrides)
    vae.mesh = mesh
    return vae
