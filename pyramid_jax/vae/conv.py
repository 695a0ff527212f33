"""The causal 3-D convolution (vae_spec.md §3.1) and the time cache that lets it run chunk by chunk (§4.1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

CHANNELS = "channels"  # logical axis of a VAE layer's output channels (see parallel/rules.py)


class TimeCache:
    """The causal time context of every conv while one chunk of a streamed clip runs.

    `history` is None for the first chunk: every conv then sees the causal zero padding, exactly as on a whole
    clip. Otherwise it is the `carry` of the previous chunk: per conv with a time kernel kt > 1, in call order, the
    last kt-1 frames `[B, kt-1, H, W, C]` of that conv's (extended) input. Call order is fixed, so the list is a
    pytree that `lax.scan` can carry.
    """

    def __init__(self, history: list[jax.Array] | None = None):
        self.history = history
        self.carry: list[jax.Array] = []

    def extend(self, x: jax.Array, context: int, stride: int) -> jax.Array:
        """`x` `[B, T, H, W, C]` with past frames in front, recording the new tail for the next chunk.

        Chunks after the first start on an odd frame at every strided level (encode windows are multiples of the
        time factor), so a stride-s conv then needs only the last `context + 1 - s` frames of its history.
        """
        if self.history is None:
            past = jnp.zeros((x.shape[0], context) + x.shape[2:], x.dtype)
        else:
            past = self.history[len(self.carry)][:, stride - 1:]
        x = jnp.concatenate([past, x], axis=1)
        self.carry.append(x[:, -context:])
        return x

    def finish(self) -> list[jax.Array]:
        """The history for the next chunk (checks that every cached conv ran)."""
        if self.history is not None and len(self.carry) != len(self.history):
            raise RuntimeError(f"{len(self.carry)} cached convs ran, the history has {len(self.history)}")
        return self.carry


class CausalConv3d(nnx.Module):
    """Conv over `[B, T, H, W, C]` that looks only backwards in time.

    kt-1 frames of past (zeros at the clip start, the cache when streaming) go in front; height and width get
    symmetric zero padding k//2. `kernel` is `[kt, kh, kw, C_in, C_out]` (torch OIDHW transposed).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: tuple[int, int, int] = (1, 1, 1), *, rngs: nnx.Rngs, dtype=jnp.float32,
                 param_dtype=jnp.float32):
        shape = (kernel_size,) * 3 + (in_channels, out_channels)
        self.kernel = nnx.Param(nnx.initializers.normal(0.02)(rngs.params(), shape, param_dtype),
                                logical_axes=(None, None, None, None, CHANNELS))
        self.bias = nnx.Param(jnp.zeros((out_channels,), param_dtype), logical_axes=(CHANNELS,))
        self.stride = tuple(stride)
        self.dtype = dtype

    def __call__(self, x: jax.Array, cache: TimeCache | None = None) -> jax.Array:
        kt, kh, kw = self.kernel.shape[:3]
        if kt > 1:
            if cache is None:
                x = jnp.pad(x, ((0, 0), (kt - 1, 0), (0, 0), (0, 0), (0, 0)))
            else:
                x = cache.extend(x, kt - 1, self.stride[0])
        # As kt 2-D convs over time-shifted frames, summed: the same sums as one 3-D conv, and XLA's CPU backend
        # runs 2-D convs (and their gradients) about 4x faster than 3-D ones.
        st, sh, sw = self.stride
        batch, frames = x.shape[0], (x.shape[1] - kt) // st + 1
        kernel = self.kernel[...].astype(self.dtype)
        y = None
        for dt in range(kt):
            shifted = x[:, dt:dt + st * (frames - 1) + 1:st].astype(self.dtype)
            part = jax.lax.conv_general_dilated(
                shifted.reshape(batch * frames, *shifted.shape[2:]), kernel[dt], window_strides=(sh, sw),
                padding=((kh // 2, kh // 2), (kw // 2, kw // 2)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                preferred_element_type=jnp.float32)
            y = part if y is None else y + part
        y = y.reshape(batch, frames, *y.shape[1:])
        return (y + self.bias[...].astype(jnp.float32)).astype(self.dtype)
