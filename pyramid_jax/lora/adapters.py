"""LoRA adapters: for each adapted kernel W [in, out] of the DiT a pair A [in, r], B [r, out], applied as
W + scale * A @ B. They live in an `nnx.State` of their own (paths `<module>/lora_a`, `<module>/lora_b`), so the
optimizer, EMA and checkpoints see only them; B starts at zero, so a fresh adapter leaves the model unchanged."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from pyramid_jax.lora.config import LoraConfig, is_target

A, B = "lora_a", "lora_b"


def path_name(path) -> str:
    return "/".join(map(str, path))


def target_kernels(params: nnx.State, targets: str) -> list[tuple[tuple, nnx.Variable]]:
    """The (path, variable) of every kernel `targets` adapts, in a fixed order."""
    found = [(path, var) for path, var in nnx.to_flat_state(params) if is_target(path_name(path), targets)]
    if not found:
        raise ValueError(f"lora.targets={targets!r} matches no kernel of this DiT")
    return sorted(found, key=lambda item: path_name(item[0]))


def adapter_variables(kernel: nnx.Variable, a: jax.Array, b: jax.Array) -> tuple[nnx.Param, nnx.Param]:
    """A and B for `kernel`, named by its logical axes ([in, None] and [None, out]) so they shard like it."""
    axes = kernel.get_metadata().get("logical_axes", (None, None))
    return nnx.Param(a, logical_axes=(axes[0], None)), nnx.Param(b, logical_axes=(None, axes[1]))


def init_adapters(params: nnx.State, config: LoraConfig, key: jax.Array) -> nnx.State:
    """Fresh float32 adapters for `config.targets`: A ~ N(0, 1 / in), B = 0."""
    entries = []
    for i, (path, var) in enumerate(target_kernels(params, config.targets)):
        fan_in, fan_out = var.get_value().shape
        a = jax.random.normal(jax.random.fold_in(key, i), (fan_in, config.rank), jnp.float32) / fan_in ** 0.5
        pair = adapter_variables(var, a, jnp.zeros((config.rank, fan_out), jnp.float32))
        entries += [(path[:-1] + (A,), pair[0]), (path[:-1] + (B,), pair[1])]
    return nnx.from_flat_state(entries)


def apply_adapters(params: nnx.State, adapters: Sequence[tuple[nnx.State, float]],
                   keep_dtype: bool = False) -> nnx.State:
    """`params` with `W + scale * A @ B` on every kernel an adapter covers (several adapters add up).

    The sum is formed in float32, so a small update is not rounded away on bfloat16 base weights; `keep_dtype`
    casts it back to W's dtype (a merged model for inference). With B = 0 the result equals W exactly.
    """
    flat = dict(nnx.to_flat_state(params))
    deltas: dict[tuple, jax.Array] = {}
    for state, scale in adapters:
        pairs = dict(nnx.to_flat_state(state))
        for path in pairs:
            if path[-1] == A:
                kernel = path[:-1] + ("kernel",)
                delta = scale * (pairs[path].get_value() @ pairs[path[:-1] + (B,)].get_value())
                deltas[kernel] = deltas[kernel] + delta if kernel in deltas else delta
    for path, var in flat.items():  # new variables throughout: ones of an outer trace cannot be merged in a scan
        w = var.get_value()
        if path in deltas:
            merged = w.astype(jnp.promote_types(w.dtype, jnp.float32)) + deltas[path]
            w = merged.astype(w.dtype) if keep_dtype else merged
        flat[path] = var.replace(w)
    return nnx.from_flat_state(list(flat.items()))
