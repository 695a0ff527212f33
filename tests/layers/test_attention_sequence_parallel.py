"""Fused attention backends on 8 fake devices with tokens split over `sequence`: equal to one device, and the
program moves K/V by all-to-all, never gathering them whole."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding

from pyramid_jax.layers.attention import TokenMask, attention
from pyramid_jax.layers.attention_splash import splash_attention
from pyramid_jax.layers.attention_ulysses import QKV_AXES, sequence_parallel_attention
from pyramid_jax.parallel.mesh import make_mesh
from pyramid_jax.parallel.rules import logical_to_spec, traced_on

B, N, H, D = 2, 64, 3, 8  # 3 heads: padded to 4 for the 4-way token split


def _inputs():
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.normal(size=(B, N, H, D)), jnp.float32) for _ in range(3))
    valid = jnp.asarray(np.arange(N)[None] >= np.array([[3], [9]])) | (np.arange(N)[None] >= 12)
    frame = jnp.asarray(np.concatenate([np.zeros(12), np.repeat(np.arange(4), 13)]), jnp.int32)
    return q, k, v, TokenMask(valid, frame)


def _sharded(mesh, fn, *arrays):
    sharding = NamedSharding(mesh, logical_to_spec(QKV_AXES, arrays[0].shape, mesh))
    return jax.jit(traced_on(mesh, fn)), [jax.device_put(x, sharding) for x in arrays]


def _relative_error(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def test_blockwise_on_a_sequence_mesh_equals_one_device():
    q, k, v, mask = _inputs()
    mesh = make_mesh(data=2, sequence=4)
    run = lambda q, k, v: attention(q, k, v, mask, "blockwise")  # noqa: E731
    loss = lambda q, k, v: jnp.sum(jnp.sin(run(q, k, v)))  # noqa: E731
    want, want_grads = run(q, k, v), jax.grad(loss, (0, 1, 2))(q, k, v)
    fwd, args = _sharded(mesh, run, q, k, v)
    assert _relative_error(fwd(*args), want) < 1e-5
    grad, _ = _sharded(mesh, jax.grad(loss, (0, 1, 2)), q, k, v)
    for got, w in zip(grad(*args), want_grads):
        assert _relative_error(got, w) < 1e-5

    hlo = fwd.lower(*args).compile().as_text()
    assert "all-to-all" in hlo
    gathered = [tuple(map(int, s.split(","))) for s in re.findall(r"\[([\d,]+)\][^\n]*all-gather\(", hlo)]
    assert all(np.prod(shape) < B * N * H * D // 2 for shape in gathered), gathered  # only the O(N) mask vectors


def test_splash_on_a_sequence_mesh_equals_one_device():
    q, k, v, mask = _inputs()
    mesh = make_mesh(data=2, sequence=4)
    backend = functools.partial(splash_attention, interpret=True)
    want = attention(q, k, v, mask, "xla")
    fwd, args = _sharded(mesh, lambda q, k, v: sequence_parallel_attention(
        backend, q, k, v, mask, D ** -0.5, jax.sharding.get_abstract_mesh()), q, k, v)
    assert _relative_error(fwd(*args), want) < 1e-5
