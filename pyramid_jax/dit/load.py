"""`load_dit`: a DiT from a torch model folder (config.json + weights) or from a converted folder."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from pyramid_jax.dit.config import dit_config_to_dict
from pyramid_jax.dit.families import dit_config_from_dict, family_of_config
from pyramid_jax.io.model_kind import ModelKind
from pyramid_jax.parallel.rules import LOGICAL_AXIS_RULES, Rules


def dit_family(config):
    """(module class, torch conversion table) of a DiT config, from the family registry."""
    family = family_of_config(config)
    return family.module_class, family.table


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
