"""`load_dit`: a DiT from a torch model folder (config.json + weights) or from a converted folder."""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from pyramid_jax.convert.dit_tables import FLUX_TABLE, MMDIT_TABLE
from pyramid_jax.convert.engine import ConversionTable
from pyramid_jax.dit.config import FluxConfig, MMDiTConfig, dit_config_from_dict, dit_config_to_dict
from pyramid_jax.dit.pyramid_flux import PyramidFluxTransformer
from pyramid_jax.dit.pyramid_mmdit import PyramidDiffusionMMDiT
from pyramid_jax.io.model_kind import ModelKind
from pyramid_jax.parallel.rules import LOGICAL_AXIS_RULES, Rules

# config class name -> (module class, torch conversion table)
DIT_FAMILIES: dict[str, tuple[Callable, ConversionTable]] = {
    FluxConfig.CLASS_NAME: (PyramidFluxTransformer, FLUX_TABLE),
    MMDiTConfig.CLASS_NAME: (PyramidDiffusionMMDiT, MMDIT_TABLE),
}


def dit_family(config):
    if config.CLASS_NAME not in DIT_FAMILIES:
        raise NotImplementedError(f"{config.CLASS_NAME} is not supported yet; available: {sorted(DIT_FAMILIES)}")
    return DIT_FAMILIES[config.CLASS_NAME]


DIT = ModelKind("DiT", dit_config_from_dict, dit_config_to_dict, dit_family)
# The effective config of a DiT folder: config.json + the pipeline's load-time values + overrides.
read_dit_config = DIT.read_config
abstract_dit = DIT.abstract


def load_dit(path: str, dtype=jnp.float32, mesh: Mesh | None = None, *, allow_pickle: bool = False,
             rules: Rules = LOGICAL_AXIS_RULES, progress=iter, **overrides) -> nnx.Module:
    """Loads a DiT, sharded over `mesh` by `rules` when given; the family comes from the config's `_class_name`.

    `path` is a torch DiT folder (e.g. `<snapshot>/diffusion_transformer_384p`) or a folder written by
    `convert_torch_weights.py`. Keyword overrides work like the reference's `from_pretrained` keywords.
    """
    return DIT.load(path, dtype, mesh, allow_pickle=allow_pickle, rules=rules, progress=progress, **overrides)
