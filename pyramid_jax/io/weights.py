"""Model weights in and out: abstract init, streaming torch conversion, converted (Orbax) folders, placement.

Nothing full-size is built eagerly: a model is first created abstractly (`nnx.eval_shape`), then each leaf is
filled from a stream of host arrays and `device_put` with its sharding, so host memory holds about one tensor.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh

from pyramid_jax.convert import engine
from pyramid_jax.convert.sources import TensorSource
from pyramid_jax.parallel.rules import LOGICAL_AXIS_RULES, Rules, state_shardings

PARAMS_DIR = "params"
CONFIG_FILE = "config.json"
Path = engine.Path


def abstract_module(build: Callable[[], nnx.Module]):
    """(graphdef, abstract state) of the module `build()` would create, without allocating it."""
    return nnx.split(nnx.eval_shape(build))


def flat_shapes(state: nnx.State) -> dict[Path, tuple[int, ...]]:
    return {path: tuple(var.get_value().shape) for path, var in nnx.to_flat_state(state)}


def materialize(graphdef, abstract: nnx.State, arrays: Iterable[tuple[Path, np.ndarray | jax.Array]],
                mesh: Mesh | None = None, rules: Rules = LOGICAL_AXIS_RULES) -> nnx.Module:
    """Fills every leaf of `abstract` from `arrays` (placed with its sharding when `mesh` is given)."""
    flat = dict(nnx.to_flat_state(abstract))
    shardings = dict(nnx.to_flat_state(state_shardings(abstract, mesh, rules))) if mesh is not None else {}
    filled = set()
    for path, array in arrays:
        var = flat[path]
        dtype = var.get_value().dtype
        value = jax.device_put(array, shardings[path]) if mesh is not None else jnp.asarray(array)
        flat[path] = var.replace(value.astype(dtype) if value.dtype != dtype else value)
        filled.add(path)
    missing = sorted("/".join(map(str, p)) for p in flat if p not in filled)
    if missing:
        raise engine.ConversionError(f"no value for {len(missing)} model parameter(s): {missing}")
    return nnx.merge(graphdef, nnx.from_flat_state(list(flat.items())))


def torch_arrays(table: engine.ConversionTable, source: TensorSource, abstract: nnx.State, dtype=None,
                 progress=iter) -> Iterator[tuple[Path, np.ndarray]]:
    """Plans the whole conversion (failing on any key or shape problem), then streams converted tensors."""
    steps = engine.plan(table, source.shapes(), flat_shapes(abstract))
    return engine.run(steps, source, dtype=dtype, progress=progress)


def write_converted(folder: str, config: dict, arrays: Iterable[tuple[Path, np.ndarray]]) -> None:
    """Writes `config.json` and an Orbax checkpoint of `arrays` into `folder` (new, or an empty folder)."""
    os.makedirs(folder, exist_ok=True)
    if os.listdir(folder):
        raise FileExistsError(f"{folder} is not empty; converted weights go into a new folder")
    tree: dict = {}
    for path, array in arrays:
        node = tree
        for p in path[:-1]:
            node = node.setdefault(str(p), {})
        node[str(path[-1])] = jax.device_put(array)  # the host copy is dropped once placed
    with open(os.path.join(folder, CONFIG_FILE), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    # Bounded in-flight serialisation keeps the peak near the one copy held in `tree`.
    ckptr = ocp.Checkpointer(ocp.StandardCheckpointHandler(save_concurrent_gb=1))
    ckptr.save(os.path.abspath(os.path.join(folder, PARAMS_DIR)), args=ocp.args.StandardSave(tree))


def is_converted(folder: str) -> bool:
    return os.path.isdir(os.path.join(folder, PARAMS_DIR)) and os.path.isfile(os.path.join(folder, CONFIG_FILE))


def converted_arrays(folder: str, abstract: nnx.State, mesh: Mesh | None = None,
                     rules: Rules = LOGICAL_AXIS_RULES) -> Iterator[tuple[Path, jax.Array]]:
    """Restores a converted folder's arrays straight into their shardings (or the default device)."""
    flat = nnx.to_flat_state(abstract)
    shardings = dict(nnx.to_flat_state(state_shardings(abstract, mesh, rules))) if mesh is not None else {}
    target: dict = {}
    for path, var in flat:
        node = target
        for p in path[:-1]:
            node = node.setdefault(str(p), {})
        value = var.get_value()
        node[str(path[-1])] = jax.ShapeDtypeStruct(value.shape, value.dtype, sharding=shardings.get(path))
    restored = ocp.StandardCheckpointer().restore(os.path.abspath(os.path.join(folder, PARAMS_DIR)), target)
    for path, _ in flat:
        node = restored
        for p in path:
            node = node[str(p)]
        yield path, node
