"""The DiT a benchmark runs: the tiny reference snapshot, or a release preset with random weights."""

from __future__ import annotations

import os

import jax.numpy as jnp
from flax import nnx

import pyramid_jax
from pyramid_jax.dit.load import dit_family
from pyramid_jax.presets import load_preset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_DIT = os.path.join(ROOT, "tests", "fixtures", "snapshots", "miniflux_tiny", "diffusion_transformer_384p")


def bench_config(preset: str, layers: int | None = None, **overrides):
    """Release preset `<preset>`'s DiT config (presets.py) with each block stack cut to `layers` and config fields `overrides`."""
    config = load_preset(preset).dit.replace(**overrides)
    if layers is not None:
        cut = {"num_layers": layers}
        if hasattr(config, "num_single_layers"):
            cut["num_single_layers"] = layers
        config = config.replace(**cut)
    return config


def bench_dit(preset: str | None = None, layers: int | None = None, dtype=jnp.float32, **overrides) -> nnx.Module:
    """The tiny snapshot's DiT (`preset` None) or release preset `<preset>`'s architecture (presets.py), randomly initialised with
    each block stack cut to `layers`; `overrides` are DiT config fields (e.g. remat_policy, scan_layers)."""
    if preset is None:
        return pyramid_jax.load_dit(TINY_DIT, dtype=dtype, **overrides)
    config = bench_config(preset, layers, **overrides)
    return dit_family(config)[0](config, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=dtype)

