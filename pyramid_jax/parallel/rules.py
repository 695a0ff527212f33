"""Logical-axis names -> mesh axes: the one rule table of the project, and the shardings it produces.

Parameters carry `logical_axes` metadata (see `layers/linear.py`) and large activations are held to logical axes
with `constrain` (applied when the program is traced on a mesh, see `traced_on`); moving between FSDP, tensor and
sequence parallelism is a change of these rules, not of model code.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import jax
from flax import nnx
from jax.sharding import AbstractMesh, Mesh, NamedSharding, PartitionSpec

Rules = Sequence[tuple[str, str | tuple[str, ...] | None]]

LOGICAL_AXIS_RULES: Rules = (
    ("batch", ("data", "fsdp")),  # activations: samples
    ("length", "sequence"),  # activations: tokens
    ("embed", "fsdp"),  # the model width D
    ("heads", "tensor"),  # attention projections (H * d)
    ("mlp", "tensor"),  # MLP and modulation widths
    ("head_dim", None),
    ("vocab", None),  # embedding-table rows: replicated, so a token lookup needs no collective
    # VAE conv, norm and attention output channels: replicated. The VAE is small (335M), and XLA (jax 0.10.2)
    # mis-partitions a conv whose input is split in space while its kernel is split by output channel.
    ("channels", None),
    ("height", "sequence"),  # activations: VAE image rows
)


def logical_to_spec(axes: Sequence[str | None], shape: Sequence[int], mesh: Mesh | AbstractMesh,
                    rules: Rules = LOGICAL_AXIS_RULES) -> PartitionSpec:
    """Maps logical names to mesh axes; a mesh axis that does not divide its dimension is left out (replicated)."""
    table = dict(rules)
    used: dict[str, str] = {}
    spec = []
    for name, dim in zip(axes, shape):
        if name is not None and name not in table:
            raise KeyError(f"logical axis {name!r} has no sharding rule; rules cover {sorted(table)}")
        mesh_axes = table.get(name) if name is not None else None
        mesh_axes = (mesh_axes,) if isinstance(mesh_axes, str) else tuple(mesh_axes or ())
        kept = []
        for axis in mesh_axes:
            if axis in used:
                raise ValueError(f"mesh axis {axis!r} used twice in {tuple(axes)} ({used[axis]!r} and {name!r})")
            if mesh.shape[axis] > 1 and dim % (math.prod(mesh.shape[a] for a in kept) * mesh.shape[axis]) == 0:
                kept.append(axis)
                used[axis] = name
        spec.append(tuple(kept) if len(kept) > 1 else (kept[0] if kept else None))
    return PartitionSpec(*spec)


def constrain(x: jax.Array, axes: Sequence[str | None], rules: Rules = LOGICAL_AXIS_RULES) -> jax.Array:
    """`x` held to the sharding its logical `axes` map to on the mesh being traced under
    (`jax.sharding.use_abstract_mesh`); unchanged when there is none."""
    mesh = jax.sharding.get_abstract_mesh()
    return x if mesh.empty else jax.lax.with_sharding_constraint(x, logical_to_spec(axes, x.shape, mesh, rules))


def axis_multiple(name: str, mesh: Mesh | AbstractMesh | None = None, rules: Rules = LOGICAL_AXIS_RULES) -> int:
    """How many shards logical axis `name` splits into on `mesh` (default: the mesh being traced under; 1 when there
    is none): a dimension padded to a multiple of it is split, never silently replicated."""
    mesh = jax.sharding.get_abstract_mesh() if mesh is None else mesh
    if mesh.empty:
        return 1
    axes = dict(rules).get(name)
    axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
    return math.prod(mesh.shape[a] for a in axes if a in mesh.shape)


def traced_on(mesh: Mesh, fn: Callable) -> Callable:
    """`fn` traced under `mesh` (as an abstract mesh, so it works inside `jax.jit`): its `constrain` calls apply."""

    @functools.wraps(fn)
    def on_mesh(*args, **kwargs):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return fn(*args, **kwargs)

    return on_mesh


def state_shardings(state: nnx.State, mesh: Mesh, rules: Rules = LOGICAL_AXIS_RULES):
    """A NamedSharding per variable of `state` (abstract or concrete), from its `logical_axes` metadata."""

    def sharding(var: nnx.Variable):
        value = var.get_value()
        axes = var.get_metadata().get("logical_axes", (None,) * value.ndim)
        return NamedSharding(mesh, logical_to_spec(axes, value.shape, mesh, rules))

    return jax.tree.map(sharding, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def batch_sharding(mesh: Mesh, shape: Sequence[int], rules: Rules = LOGICAL_AXIS_RULES) -> NamedSharding:
    """Sharding of an activation whose leading axis is the batch; other axes replicated."""
    return NamedSharding(mesh, logical_to_spec(("batch",) + (None,) * (len(shape) - 1), shape, mesh, rules))
