"""The one attention function of the project, with its masking rule and selectable backends.

The reference's mask (dit_spec.md §2.6) is never passed around as an `[N, N]` array: a `TokenMask` holds the
per-token vectors it is built from, so a blockwise kernel can generate it on the fly.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from pyramid_jax.errors import ArgumentError
from pyramid_jax.layers.attention_blockwise import blockwise_attention
from pyramid_jax.layers.attention_chunked import chunked_attention
from pyramid_jax.layers.attention_cudnn import cudnn_attention
from pyramid_jax.layers.attention_splash import splash_attention
from pyramid_jax.layers.attention_ulysses import sequence_parallel_attention


@functools.partial(jax.tree_util.register_dataclass, data_fields=["valid", "frame", "query_valid"],
                   meta_fields=["key_limits"])
@dataclasses.dataclass(frozen=True)
class TokenMask:
    """Per-token mask inputs for a sequence of N tokens.

    valid: `[B, N]` bool; token i may attend token j only if `valid[i] == valid[j]` (pad sees only pad).
    frame: `[N]` int temporal ids, or None; when given, i may attend j only if `frame[i] >= frame[j]`.
    query_valid: `[B, N]` bool, or None; when given it replaces `valid` on the query side of that rule
        (queries and keys then work like a kernel's q/kv segment ids). See `key_padding`.
    key_limits: static promises `((q_stop, k_stop), ...)`, q_stop increasing: the tokens from the previous q_stop
        (0 for the first) up to q_stop see no key at or after k_stop (>= q_stop), e.g. history clips that do not
        see the later clips; later tokens promise nothing. A backend may skip those masked keys; the mask it
        describes is the same either way.
    """

    valid: jax.Array
    frame: jax.Array | None = None
    query_valid: jax.Array | None = None
    key_limits: tuple[tuple[int, int], ...] = ()

    def replace(self, **changes) -> TokenMask:
        return dataclasses.replace(self, **changes)

    @classmethod
    def key_padding(cls, valid: jax.Array, frame: jax.Array | None = None) -> TokenMask:
        """The usual padding mask of text encoders: every query, pad or not, attends exactly the valid keys."""
        return cls(valid, frame, jnp.ones_like(valid))

    def dense(self) -> jax.Array:
        """The full boolean mask `[B, 1, N, N]` (True = may attend)."""
        queries = self.valid if self.query_valid is None else self.query_valid
        mask = queries[:, :, None] == self.valid[:, None, :]
        if self.frame is not None:
            mask = mask & (self.frame[:, None] >= self.frame[None, :])[None]
        return mask[:, None]


def _xla_attention(q, k, v, mask: TokenMask, scale: float, bias: jax.Array | None):
    first = k.shape[1] - q.shape[1]  # queries are the last tokens' (see `attention`)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * scale
    if bias is not None:
        logits = logits + bias.astype(jnp.float32)[..., first if bias.shape[-2] > 1 else 0:, :]
    logits = jnp.where(mask.dense()[:, :, first:], logits, -jnp.inf)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", probs, v)


class Backend(NamedTuple):
    """An attention implementation and the platforms (`current_platform()` names) it runs on; `query_tail`: it
    takes fewer queries than keys (those of the last tokens), else `attention()` pads the queries for it."""

    fn: Callable
    platforms: tuple[str, ...] = ("cpu", "gpu", "tpu")
    query_tail: bool = True


ATTENTION_BACKENDS: dict[str, Backend] = {
    "xla": Backend(_xla_attention),
    "chunked": Backend(chunked_attention),
    "blockwise": Backend(blockwise_attention),
    "splash": Backend(splash_attention, ("tpu",), query_tail=False),
    "cudnn": Backend(cudnn_attention, ("gpu",), query_tail=False),
}
# Every name a config may hold: the backends plus the automatic per-platform choice.
BACKEND_NAMES = ("auto", *ATTENTION_BACKENDS)

# On CPU the choice follows the size of the full `[B, H, N, N]` float32 score tensor. Below ~16 MiB it stays in cache
# and the dense xla path is fastest. Above, the chunked path computes the same numbers faster (its score blocks stay
# in cache): forward / gradient ms at B=2, H=4, d=64 on this project's 2-core CPU, xla vs chunked: 512 tokens (8 MiB)
# 1.9 / 7.1 vs 2.7 / 8.0, 1,024 tokens (32 MiB) 21.7 / 76.4 vs 7.8 / 50.3. Chunked bounds the forward's memory to a
# `[B, H, 128, N]` block, but its gradient keeps every block, so above a few hundred MB of scores (a release 384p
# last unit has 1.8 GB) the blockwise path takes over, whose backward is bounded too. DiT forward at
# bench/cpu_speed.py's last unit (miniFLUX D=256, 2+4 blocks, CFG batch 2, 640x384, stage 2, 2,348 tokens, 168 MiB of
# scores), interleaved in one process at load ~5: xla 0.91 s, chunked 0.72 s (blockwise was 1.3x slower than xla).
CPU_XLA_MAX_SCORE_BYTES = 16 << 20
CPU_CHUNKED_MAX_SCORE_BYTES = 256 << 20


def current_platform() -> str:
    """The platform being compiled for: that of the mesh being traced under (a TPU topology compiled ahead of time
    on a CPU host is `tpu`), else `jax.default_backend()`."""
    mesh = jax.sharding.get_abstract_mesh()
    device = None if mesh.empty else mesh.abstract_device
    platform = jax.default_backend() if device is None else device.platform
    return "gpu" if platform in ("cuda", "rocm") else platform


def available_backends(platform: str | None = None) -> list[str]:
    """Backend names that run on `platform` (default: `current_platform()`), `auto` first."""
    platform = platform or current_platform()
    return ["auto"] + [name for name, b in ATTENTION_BACKENDS.items() if platform in b.platforms]


def check_backend(name: str, platform: str | None = None) -> str:
    """`name` if it can run on `platform` (default: `current_platform()`), else an error naming the ones that can."""
    platform = platform or current_platform()
    if name not in available_backends(platform):
        known = "unknown" if name not in BACKEND_NAMES else f"not available on platform {platform!r}"
        raise ArgumentError(f"attention backend {name!r} is {known}; available: {available_backends(platform)}")
    return name


def auto_backend(q: jax.Array, bias: jax.Array | None, platform: str | None = None, k: jax.Array | None = None) -> str:
    """The automatic choice for queries `q` over keys `k` (None: as many as queries): xla when there is a logit bias
    (only xla takes one) or, on CPU, while the score tensor is small; chunked on CPU for mid-sized scores;
    otherwise the platform's memory-bounded kernel."""
    platform = platform or current_platform()
    b, m, h, _ = q.shape
    n = m if k is None else k.shape[1]
    if bias is not None:
        return "xla"
    if platform == "cpu":
        scores = b * h * m * n * 4
        return "xla" if scores <= CPU_XLA_MAX_SCORE_BYTES else (
            "chunked" if scores <= CPU_CHUNKED_MAX_SCORE_BYTES else "blockwise")
    return {"gpu": "cudnn", "tpu": "splash"}.get(platform, "blockwise")


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: TokenMask, backend: str = "auto", *,
              scale: float | None = None, bias: jax.Array | None = None) -> jax.Array:
    """softmax(scale q k^T + bias, masked) v for k, v `[B, N, H, d]` and q `[B, M, H, d]`; returns `[B, M, H, d]`.

    `M <= N` queries are those of the last M tokens (a layer whose other outputs nobody reads computes only these);
    the mask describes all N tokens.

    `scale` defaults to 1/sqrt(d); `bias` is an additive logit bias broadcastable to `[B, H, N, N]` (T5's relative
    position bias), added in float32. `backend` is a name of `available_backends()`; `auto` picks per platform.
    Traced under a mesh (`parallel/rules.py`), a backend other than xla runs per device by `shard_map`, with an
    all-to-all from token to head parallelism when the tokens are split (`attention_ulysses.py`).
    """
    platform = current_platform()
    backend = check_backend(backend, platform)
    if backend == "auto":
        backend = auto_backend(q, bias, platform, k)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    fn = ATTENTION_BACKENDS[backend].fn
    mesh = jax.sharding.get_abstract_mesh()
    skipped = k.shape[1] - q.shape[1]
    if skipped < 0:
        raise ValueError(f"attention has {q.shape[1]} queries for {k.shape[1]} keys; at most one per key")
    if skipped and not (ATTENTION_BACKENDS[backend].query_tail and (backend == "xla" or mesh.empty)):
        return attention(jnp.pad(q, [(0, 0), (skipped, 0), (0, 0), (0, 0)]), k, v, mask, backend, scale=scale,
                         bias=bias)[:, skipped:]
    if backend == "xla" or mesh.empty:
        return fn(q, k, v, mask, scale, bias)
    if bias is not None:
        raise ValueError(f"attention backend {backend!r} takes no logit bias; use backend 'xla' for biased attention")
    return sequence_parallel_attention(lambda *args: fn(*args, None), q, k, v, mask, scale, mesh)
