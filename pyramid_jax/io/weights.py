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
                 progress=iter, check_finite: bool = False) -> Iterator[tuple[Path, np.ndarray]]:
    """Plans the whole conversion (failing on any key or shape problem), then streams converted tensors."""
    steps = engine.plan(table, source.shapes(), flat_shapes(abstract))
    return engine.run(steps, source, dtype=dtype, progress=progress, check_finite=check_finite)


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
    check_converted(folder, flat_shapes(abstract))
    params = os.path.abspath(os.path.join(folder, PARAMS_DIR))
    try:
        restored = ocp.StandardCheckpointer().restore(params, target)
    except Exception as e:  # noqa: BLE001 - tensorstore/orbax errors of a damaged folder, e.g. a deleted shard
        raise engine.ConversionError(f"{params} cannot be read (damaged or incomplete?): {type(e).__name__}: "
                                     f"{_first_line(e)}") from e
    for path, _ in flat:
        node = restored
        for p in path:
            node = node[str(p)]
        yield path, node


def check_converted(folder: str, expected: dict[Path, tuple[int, ...]]) -> None:
    """Fails naming each parameter whose stored shape differs from what `folder`'s config.json builds, or that is
    missing or extra (a checkpoint of another architecture, or a config.json edited after conversion); reads only
    the checkpoint's metadata."""
    params = os.path.abspath(os.path.join(folder, PARAMS_DIR))
    try:
        stored = ocp.StandardCheckpointer().metadata(params).item_metadata
    except Exception as e:  # noqa: BLE001 - a missing or garbled metadata file
        raise engine.ConversionError(f"{params} is not a readable converted checkpoint: {type(e).__name__}: "
                                     f"{_first_line(e)}") from e
    found = {tuple(str(getattr(k, "key", k)) for k in path): tuple(meta.shape)
             for path, meta in jax.tree_util.tree_flatten_with_path(stored)[0]}
    want = {tuple(str(p) for p in path): shape for path, shape in expected.items()}
    if not found:
        raise engine.ConversionError(f"{params} holds no parameters (damaged or incomplete?)")
    problems = [f"{'/'.join(p)}: stored {list(found[p])}, config wants {list(s)}"
                for p, s in want.items() if p in found and found[p] != s]
    problems += [f"{'/'.join(p)}: missing from the checkpoint (config wants {list(s)})"
                 for p, s in want.items() if p not in found]
    problems += [f"{'/'.join(p)}: in the checkpoint, not in the model" for p in found if p not in want]
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise engine.ConversionError(
            f"{os.path.join(folder, PARAMS_DIR)} does not match {os.path.join(folder, CONFIG_FILE)} "
            f"({len(problems)} parameter(s)):\n" + "\n".join(f"  {p}" for p in shown))


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else ""
