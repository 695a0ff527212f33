"""Every attention backend against the xla path (fp32, forward and gradients), and the backend choice."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pyramid_jax.layers.attention import (ATTENTION_BACKENDS, TokenMask, attention, auto_backend,
                                         available_backends)
from pyramid_jax.layers.attention_blockwise import blockwise_attention
from pyramid_jax.layers.attention_chunked import chunked_attention
from pyramid_jax.layers.attention_cudnn import cudnn_attention, fallback_reason, segment_attention
from pyramid_jax.layers.attention_splash import splash_attention


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
    limits = ((text, n - per_frame), *((text + f * per_frame,) * 2 for f in range(1, frames)))  # each frame's rows
    return q, k, v, mask.replace(key_limits=limits if frames > 1 else ())  # see no later frame (text: the last)


CASES = {
    "padded_text_cfg_rows_frames": dict(batch=2, text=7, frames=3, per_frame=10, text_valid=(5, 2)),
    "odd_tokens_one_frame": dict(batch=1, text=5, frames=1, per_frame=26, text_valid=(3,)),
    "many_frames_no_padding": dict(batch=2, text=4, frames=5, per_frame=9),
    "key_padding_frames": dict(batch=2, text=6, frames=2, per_frame=13, text_valid=(4, 1), key_padding=True),
}

BACKENDS = {"blockwise": functools.partial(blockwise_attention, q_block=16, k_block=8),
            "chunked": functools.partial(chunked_attention, chunk=8),
            "splash": functools.partial(splash_attention, interpret=True)}


def _loss(fn, mask, q, k, v):
    out = fn(q, k, v, mask, q.shape[-1] ** -0.5)
    return jnp.sum(out * jnp.cos(jnp.arange(out.size).reshape(out.shape)))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_backend_matches_xla(backend, case):
    q, k, v, mask = _case(**CASES[case])
    want = attention(q, k, v, mask, "xla")
    got = jax.jit(lambda q, k, v: BACKENDS[backend](q, k, v, mask, q.shape[-1] ** -0.5))(q, k, v)  # static mask
    assert _relative_error(got, want) < 1e-5
    xla = lambda q, k, v, mask, scale: attention(q, k, v, mask, "xla", scale=scale)  # noqa: E731
    grads_want = jax.grad(functools.partial(_loss, xla, mask), (0, 1, 2))(q, k, v)
    grads_got = jax.jit(jax.grad(functools.partial(_loss, BACKENDS[backend], mask), (0, 1, 2)))(q, k, v)
    for got_g, want_g in zip(grads_got, grads_want):
        assert _relative_error(got_g, want_g) < 1e-5


@pytest.mark.parametrize("queries", [1, 10, 17, 49])
@pytest.mark.parametrize("backend", ["xla", *sorted(BACKENDS)])
def test_queries_of_the_last_tokens_match_those_rows(backend, queries, monkeypatch):
    """Fewer queries than keys (those of the last tokens: the current clip, less or more than it, or one token):
    the rows of the all-token result, forward and gradients. splash takes no such query block and gets padded
    queries from `attention()` (here in interpret mode on CPU)."""
    q, k, v, mask = _case(**CASES["padded_text_cfg_rows_frames"])  # 37 tokens, key limits at 7, 17, 27
    if backend in BACKENDS:  # small blocks, and splash on CPU
        monkeypatch.setitem(ATTENTION_BACKENDS, backend,
                            ATTENTION_BACKENDS[backend]._replace(fn=BACKENDS[backend], platforms=("cpu",)))
    tail = lambda q, k, v, mask, scale: attention(q[:, -queries:], k, v, mask, backend, scale=scale)  # noqa: E731
    rows = lambda q, k, v, mask, scale: attention(q, k, v, mask, "xla", scale=scale)[:, -queries:]  # noqa: E731
    got = jax.jit(lambda *a: tail(*a, mask, 8 ** -0.5))(q, k, v)
    assert _relative_error(got, rows(q, k, v, mask, 8 ** -0.5)) < 1e-5
    grads_want = jax.grad(functools.partial(_loss, rows, mask), (0, 1, 2))(q, k, v)
    grads_got = jax.jit(jax.grad(functools.partial(_loss, tail, mask), (0, 1, 2)))(q, k, v)
    for got_g, want_g in zip(grads_got, grads_want):
        assert _relative_error(got_g, want_g) < 1e-5


def test_more_queries_than_keys_is_an_error():
    q, k, v, mask = _case(batch=1, text=2, frames=1, per_frame=6)
    with pytest.raises(ValueError, match="9 queries for 8 keys"):
        attention(jnp.zeros((1, 9, 2, 8)), k, v, mask)


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


@pytest.mark.parametrize("traced", [False, True])
def test_splash_tiles_with_static_and_runtime_frames(traced):
    """Three 128-token tiles. Static frame ids: tiles above the staircase skipped; traced ones (bucketed programs,
    shifted as by a leading pad frame): every tile computed, the mask read at run time."""
    q, k, v, mask = _case(batch=2, text=3, frames=3, per_frame=100, text_valid=(1, 3))
    frame = jnp.maximum(mask.frame - 1, 0) if traced else mask.frame
    run = lambda q, frame: splash_attention(q, k, v, mask.replace(frame=frame), 8 ** -0.5,  # noqa: E731
                                            interpret=True, block=128)
    got = jax.jit(run)(q, frame) if traced else jax.jit(lambda q: run(q, frame))(q)
    assert _relative_error(got, attention(q, k, v, mask.replace(frame=frame), "xla")) < 1e-5


def _length_kernel(q, k, v, q_len, kv_len, scale):
    """Stands in for cuDNN on CPU: the same length-masked call through XLA."""
    return jax.nn.dot_product_attention(q, k, v, scale=scale, query_seq_lengths=q_len, key_value_seq_lengths=kv_len,
                                        implementation="xla")


@pytest.mark.parametrize("key_padding", [False, True])
def test_cudnn_mask_translation_matches_xla(key_padding):
    """Padding as sequence lengths of tokens sorted by validity, one call per validity, pads scattered about."""
    q, k, v, _ = _case(batch=3, text=0, frames=1, per_frame=29, seed=1)
    valid = jnp.asarray(np.random.default_rng(2).random((3, 29)) < 0.7).at[2].set(key_padding is False)
    mask = TokenMask.key_padding(valid) if key_padding else TokenMask(valid)
    query_valid = valid if mask.query_valid is None else mask.query_valid
    got = jax.jit(segment_attention, static_argnums=(5, 6))(q, k, v, query_valid, valid, 8 ** -0.5, _length_kernel)
    want = attention(q, k, v, mask, "xla")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    assert np.max(np.abs(got[finite] - want[finite])) / np.max(np.abs(want[finite])) < 1e-5


def test_cudnn_falls_back_where_it_cannot_be_exact():
    q, k, v, mask = _case(batch=2, text=4, frames=3, per_frame=5, text_valid=(2, 3))
    assert "fp16/bf16" in fallback_reason(q, mask)
    assert "frame-causal" in fallback_reason(q.astype(jnp.bfloat16), mask)
    assert fallback_reason(q.astype(jnp.bfloat16), mask.replace(frame=jnp.zeros(19, jnp.int32))) is None
    got = jax.jit(lambda q, k, v: cudnn_attention(q, k, v, mask, 8 ** -0.5))(q, k, v)  # fp32: blockwise
    assert _relative_error(got, attention(q, k, v, mask, "xla")) < 1e-5


def test_backend_names_are_checked():
    q, k, v, mask = _case(batch=1, text=2, frames=1, per_frame=6)
    with pytest.raises(ValueError, match=r"unknown.*available: \['auto', 'xla', 'chunked', 'blockwise'"):
        attention(q, k, v, mask, "magic")
    with pytest.raises(ValueError, match=r"'splash' is not available on platform 'cpu'; available: \['auto', 'xla'"):
        attention(q, k, v, mask, "splash")
    assert available_backends("tpu") == ["auto", "xla", "chunked", "blockwise", "splash"]
    assert available_backends("gpu") == ["auto", "xla", "chunked", "blockwise", "cudnn"]


def test_auto_choice():
    small, large = jnp.zeros((1, 256, 2, 8)), jax.ShapeDtypeStruct((2, 4096, 4, 8), jnp.float32)  # 512 MiB scores
    mid = jax.ShapeDtypeStruct((2, 2048, 4, 8), jnp.float32)  # 128 MiB scores
    assert auto_backend(small, None, "cpu") == "xla" and auto_backend(mid, None, "cpu") == "chunked"
    assert auto_backend(large, None, "cpu") == "blockwise"
    assert auto_backend(small, None, "gpu") == "cudnn" and auto_backend(small, None, "tpu") == "splash"
    assert auto_backend(small, jnp.zeros((1, 2, 256, 256)), "cpu") == "xla"  # only xla takes a bias
