"""`load_dit`: a DiT from a torch model folder (config.json + weights) or from a converted folder."""

from __future__ import annotations

import json
import os
from typing import Callable

import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from pyramid_jax.convert.dit_tables import FLUX_TABLE, MMDIT_TABLE
from pyramid_jax.convert.engine import ConversionTable
from pyramid_jax.convert.sources import open_torch_checkpoint
from pyramid_jax.dit.config import FluxConfig, MMDiTConfig, dit_config_from_dict
from pyramid_jax.dit.pyramid_flux import PyramidFluxTransformer
from pyramid_jax.dit.pyramid_mmdit import PyramidDiffusionMMDiT
from pyramid_jax.io import weights
from pyramid_jax.parallel.rules import LOGICAL_AXIS_RULES, Rules

# config class name -> (module class, torch conversion table)
DIT_FAMILIES: dict[str, tuple[Callable, ConversionTable]] = {
    FluxConfig.CLASS_NAME: (PyramidFluxTransformer, FLUX_TABLE),
    MMDiTConfig.CLASS_NAME: (PyramidDiffusionMMDiT, MMDIT_TABLE),
}


def read_dit_config(path: str, **overrides):
    """The effective config of the DiT folder `path`: config.json + the pipeline's load-time values + overrides."""
    config_path = os.path.join(path, weights.CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"no {weights.CONFIG_FILE} in DiT folder {path}")
    with open(config_path) as f:
        return dit_config_from_dict(json.load(f), **overrides)


def dit_family(config):
    if config.CLASS_NAME not in DIT_FAMILIES:
        raise NotImplementedError(f"{config.CLASS_NAME} is not supported yet; available: {sorted(DIT_FAMILIES)}")
    return DIT_FAMILIES[config.CLASS_NAME]


def abstract_dit(config, dtype=jnp.float32):
    """(graphdef, abstract state) of the DiT for `config`, with parameters stored and computed in `dtype`."""
    model_cls, _ = dit_family(config)
    return weights.abstract_module(lambda: model_cls(config, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=dtype))


def load_dit(path: str, dtype=jnp.float32, mesh: Mesh | None = None, *, allow_pickle: bool = False,
             rules: Rules = LOGICAL_AXIS_RULES, progress=iter, **overrides) -> nnx.Module:
    """Loads a DiT, sharded over `mesh` by `rules` when given.

    `path` is a torch DiT folder (e.g. `<snapshot>/diffusion_transformer_384p`) or a folder written by
    `convert_torch_weights.py`. Keyword overrides work like the reference's `from_pretrained` keywords.
    """
    config = read_dit_config(path, **overrides)
    graphdef, abstract = abstract_dit(config, dtype)
    if weights.is_converted(path):
        arrays = weights.converted_arrays(path, abstract, mesh, rules)
    else:
        _, table = dit_family(config)
        source = open_torch_checkpoint(path, allow_pickle=allow_pickle)
        arrays = weights.torch_arrays(table, source, abstract, progress=progress)
    return weights.materialize(graphdef, abstract, arrays, mesh, rules)
