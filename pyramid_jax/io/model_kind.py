"""One loader and one converter for every kind of model folder (DiT, VAE, text encoder).

A folder holds `config.json` plus torch weights, or `config.json` plus a converted Orbax checkpoint. A `ModelKind`
says how its config is parsed and which module class and conversion table a config maps to; loading and
conversion are the same for all kinds.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from pyramid_jax.config import ConfigError, FrozenConfig, read_json
from pyramid_jax.convert import engine
from pyramid_jax.convert.engine import ConversionTable
from pyramid_jax.convert.sources import open_torch_checkpoint, weight_files
from pyramid_jax.io import weights
from pyramid_jax.parallel.rules import LOGICAL_AXIS_RULES, Rules, state_shardings


def _named(path: str, arrays):
    """`arrays`, with the folder named in a conversion error raised while reading them (a non-float weight...)."""
    try:
        yield from arrays
    except engine.ConversionError as e:
        raise engine.ConversionError(f"{path}: {e}") from None


@dataclasses.dataclass(frozen=True)
class ModelKind:
    name: str  # used in messages, e.g. "DiT"
    config_from_dict: Callable[..., FrozenConfig]  # (parsed config.json, **overrides) -> effective config
    config_to_dict: Callable[[FrozenConfig], dict]  # the JSON written next to converted weights
    resolve: Callable[[FrozenConfig], tuple[Callable, ConversionTable]]  # config -> (module class, torch table)

    def read_config(self, path: str, **overrides) -> FrozenConfig:
        config_path = os.path.join(path, weights.CONFIG_FILE)
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"no {weights.CONFIG_FILE} in {self.name} folder {path}")
        values = read_json(config_path)
        try:
            config = self.config_from_dict(values, **overrides)
        except ConfigError as e:
            raise ConfigError(f"{config_path}: {e}") from None
        missing = sorted(type(config).REQUIRED_FIELDS - set(values) - set(overrides))
        if missing:
            raise ConfigError(f"{config_path}: missing field(s) {missing}, which set the {self.name}'s shapes")
        return config

    def check(self, path: str, allow_pickle: bool = False, shapes: bool = True) -> None:
        """Fails now, naming the file and parameter, if folder `path` could not be loaded later: its config.json, its
        weight files (`.bin` only with `allow_pickle`) and, with `shapes`, every parameter's name and shape (headers
        and metadata only, but the model is built abstractly: a second or two)."""
        config = self.read_config(path)
        if not shapes:
            if not weights.is_converted(path):
                weight_files(path, allow_pickle=allow_pickle)
            return
        expected = weights.flat_shapes(self.abstract(config)[1])
        if weights.is_converted(path):
            weights.check_converted(path, expected)
            return
        source = open_torch_checkpoint(path, allow_pickle=allow_pickle)
        try:
            engine.plan(self.resolve(config)[1], source.shapes(), expected)
        except engine.ConversionError as e:
            raise engine.ConversionError(f"{path}: {e}") from None

    def abstract(self, config: FrozenConfig, dtype=jnp.float32):
        """(graphdef, abstract state) of the module for `config`, parameters stored and computed in `dtype`."""
        model_cls, _ = self.resolve(config)
        return weights.abstract_module(lambda: model_cls(config, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=dtype))

    def init(self, config: FrozenConfig, seed: int = 0, dtype=jnp.float32, mesh: Mesh | None = None,
             rules: Rules = LOGICAL_AXIS_RULES) -> nnx.Module:
        """A randomly initialised module for `config` (training from scratch), created directly in its shardings
        when `mesh` is given, so no device ever holds more than its share."""
        model_cls, _ = self.resolve(config)
        graphdef, abstract = self.abstract(config, dtype)

        def create():
            return nnx.state(model_cls(config, rngs=nnx.Rngs(seed), dtype=dtype, param_dtype=dtype))

        shardings = state_shardings(abstract, mesh, rules) if mesh is not None else None
        return nnx.merge(graphdef, jax.jit(create, out_shardings=shardings)())

    def torch_arrays(self, path: str, config: FrozenConfig, abstract: nnx.State, *, allow_pickle: bool = False,
                     dtype=None, progress=iter, check_finite: bool = False):
        """The converted tensors of the torch folder `path`, checked against `abstract` before any is read."""
        source = open_torch_checkpoint(path, allow_pickle=allow_pickle)
        try:
            arrays = weights.torch_arrays(self.resolve(config)[1], source, abstract, dtype=dtype, progress=progress,
                                          check_finite=check_finite)
        except engine.ConversionError as e:  # the plan's key and shape problems: name the folder
            raise engine.ConversionError(f"{path}: {e}") from None
        return _named(path, arrays)

    def load(self, path: str, dtype=jnp.float32, mesh: Mesh | None = None, *, allow_pickle: bool = False,
             rules: Rules = LOGICAL_AXIS_RULES, progress=iter, **overrides) -> nnx.Module:
        """The module of folder `path` (torch or converted), sharded over `mesh` by `rules` when given."""
        config = self.read_config(path, **overrides)
        graphdef, abstract = self.abstract(config, dtype)
        if weights.is_converted(path):
            arrays = weights.converted_arrays(path, abstract, mesh, rules)
        else:
            arrays = self.torch_arrays(path, config, abstract, allow_pickle=allow_pickle, progress=progress)
        return weights.materialize(graphdef, abstract, arrays, mesh, rules)

    def convert(self, src: str, dst: str, dtype=None, allow_pickle: bool = False, progress=iter,
                allow_nonfinite: bool = False) -> None:
        """Writes the converted folder `dst` (config.json + Orbax checkpoint) from the torch folder `src`; a NaN or
        infinite weight is an error unless `allow_nonfinite`."""
        config = self.read_config(src)
        _, abstract = self.abstract(config)
        arrays = self.torch_arrays(src, config, abstract, allow_pickle=allow_pickle, dtype=dtype, progress=progress,
                                   check_finite=not allow_nonfinite)
        weights.write_converted(dst, self.config_to_dict(config), arrays)
