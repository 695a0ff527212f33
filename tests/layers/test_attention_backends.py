"""Every attention backend against the xla path (fp32, forward and gradients), and the backend choice."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pyramid_jax.layers.attention import TokenMask, attention, auto_backend, available_backends
from pyramid_jax.layers.attention_blockwise import blockwise_attention


def _relative_error(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def _case(batch, text, frames, per_frame, heads=2, head_dim=8, text_valid=(), key_padding=False, seed=0):
    """Random q, k, v for [text ; image frames] with `text_valid[b]` valid text tokens per row (CFG rows differ)."""
    rng = np.random.default_rng(seed)
    n = text + frames * per_frame
    q, k, v = (jnp.asarray(rng.normal(size=(batch, n, heads, head_dim)), jnp.float32) for _ in range(3))
    valid = np.ones((batch, n), bool)
    for row, count in enumerate(text_valid):
        valid[row, count:text] = False
    frame = jnp.asarray(np.concatenate([np.zeros(text), np.repeat(np.arange(frames), per_frame)]), jnp.int32)
    mask = (TokenMask.key_padding(jnp.asarray(valid), frame) if key_padding
            else TokenMask(jnp.asarray(valid), frame if frames > 1 else None))
    return q, k, v, mask


CASES = {
    "padded_text_cfg_rows_frames": dict(batch=2, text=7, frames=3, per_frame=10, text_valid=(5, 2)),
    "odd_tokens_one_frame": dict(batch=1, text=5, frames=1, per_frame=26, text_valid=(3,)),
    "many_frames_no_padding": dict(batch=2, text=4, frames=5, per_frame=9),
    "key_padding_frames": dict(batch=2, text=6, frames=2, per_frame=13, text_valid=(4, 1), key_padding=True),
}

BACKENDS = {"blockwise": functools.partial(blockwise_attention, q_block=16, k_block=8)}


def _loss(fn, mask, q, k, v):
    out = fn(q, k, v, mask, q.shape[-1] ** -0.5)
    return jnp.sum(out * jnp.cos(jnp.arange(out.size).reshape(out.shape)))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_backend_matches_xla(backend, case):
    q, k, v, mask = _case(**CASES[case])
    want = attention(q, k, v, mask, "xla")
    got = jax.jit(BACKENDS[backend], static_argnums=4)(q, k, v, mask, q.shape[-1] ** -0.5)
    assert _relative_error(got, want) < 1e-5
    xla = lambda q, k, v, mask, scale: attention(q, k, v, mask, "xla", scale=scale)  # noqa: E731
    grads_want = jax.grad(functools.partial(_loss, xla, mask), (0, 1, 2))(q, k, v)
    grads_got = jax.jit(jax.grad(functools.partial(_loss, BACKENDS[backend], mask), (0, 1, 2)))(q, k, v)
    for got_g, want_g in zip(grads_got, grads_want):
        assert _relative_error(got_g, want_g) < 1e-5


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_query_with_no_allowed_key_matches_xla(backend):
    """A key-padding row whose keys are all pad: the xla softmax gives NaN there, and so must the backend."""
    q, k, v, _ = _case(batch=2, text=6, frames=1, per_frame=11)
    valid = jnp.ones((2, 17), bool).at[1].set(False)
    mask = TokenMask.key_padding(valid)
    want = attention(q, k, v, mask, "xla")
    got = BACKENDS[backend](q, k, v, mask, q.shape[-1] ** -0.5)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(want[1]).all() and _relative_error(got[0], want[0]) < 1e-5


def test_blockwise_holds_no_score_matrix():
    """Compiled forward and backward at N=8192: temp memory far below one [N, N] float32 tensor (256 MiB; the
    tiles take ~10 and ~21 MiB, growing linearly in N)."""
    n = 8192
    q = jax.ShapeDtypeStruct((1, n, 2, 32), jnp.float32)
    mask = TokenMask(jnp.ones((1, n), bool), jnp.repeat(jnp.arange(4, dtype=jnp.int32), n // 4))

    def loss(q, k, v):
        return jnp.sum(attention(q, k, v, mask, "blockwise"))

    for fn in (lambda q, k, v: attention(q, k, v, mask, "blockwise"), jax.grad(loss, (0, 1, 2))):
        temp = jax.jit(fn).lower(q, q, q).compile().memory_analysis().temp_size_in_bytes
        assert temp < n * n * 4 / 8, f"temp {temp} bytes"


def test_backend_names_are_checked():
    q, k, v, mask = _case(batch=1, text=2, frames=1, per_frame=6)
    with pytest.raises(ValueError, match=r"unknown.*available: \['auto', 'xla', 'blockwise'"):
        attention(q, k, v, mask, "magic")
    assert "xla" in available_backends("cpu") and "blockwise" in available_backends("tpu")


def test_auto_choice():
    small, large = jnp.zeros((1, 256, 2, 8)), jax.ShapeDtypeStruct((2, 8192, 8, 8), jnp.float32)
    assert auto_backend(small, None, "cpu") == "xla"
    assert auto_backend(large, None, "cpu") == "blockwise"
    assert auto_backend(small, jnp.zeros((1, 2, 256, 256)), "cpu") == "xla"  # only xla takes a bias
