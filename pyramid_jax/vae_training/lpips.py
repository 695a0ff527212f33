"""LPIPS perceptual distance (vae_spec.md §5.2): VGG16 features, unit-normalised per channel, learned 1x1 weights.

Every weight is a `Buffer`, not a `Param`: LPIPS is frozen, so optimisers and `nnx.grad` skip it. Conv weights
start at zero and come from `load_lpips`. Attribute names follow the torch checkpoint (`scaling_layer`, `net`,
`lin0..4` as `lins`), with `net.features` numbered like torchvision's `vgg16().features`; `convert/lpips_table.py`
maps the keys.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pyramid_jax.layers.buffer import Buffer

VGG16_WIDTHS = (64, 128, 256, 512, 512)  # channels of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
VGG16_DEPTHS = (2, 2, 3, 3, 3)  # convs per block; every block after the first starts with a 2x2 max-pool
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
DROPOUT_RATE = 0.5
NORM_EPS = 1e-10


class Conv2d(nnx.Module):
    """A frozen stride-1 conv over `[N, H, W, C]` with zero padding k//2; `kernel` is `[k, k, C_in, C_out]`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, use_bias: bool = True, *,
                 dtype=jnp.float32, param_dtype=jnp.float32):
        self.kernel = Buffer(jnp.zeros((kernel_size, kernel_size, in_channels, out_channels), param_dtype))
        self.bias = Buffer(jnp.zeros((out_channels,), param_dtype)) if use_bias else None
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        pad = self.kernel.shape[0] // 2
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype), self.kernel[...].astype(self.dtype), window_strides=(1, 1),
            padding=((pad, pad), (pad, pad)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
            preferred_element_type=jnp.float32)
        return y if self.bias is None else y + self.bias[...].astype(jnp.float32)


class ScalingLayer(nnx.Module):
    """`(x - shift) / scale` per RGB channel; `shift`, `scale` are `[1, 1, 1, 3]` (loaded from the checkpoint)."""

    def __init__(self, param_dtype=jnp.float32):
        self.shift = Buffer(jnp.asarray(SHIFT, param_dtype).reshape(1, 1, 1, 3))
        self.scale = Buffer(jnp.asarray(SCALE, param_dtype).reshape(1, 1, 1, 3))

    def __call__(self, x: jax.Array) -> jax.Array:
        return (x - self.shift[...]) / self.scale[...]


def max_pool(x: jax.Array) -> jax.Array:
    """2x2 max-pool with stride 2 over `[N, H, W, C]` (odd sizes floor, as torch)."""
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


class VGG16Features(nnx.Module):
    """torchvision `vgg16().features[:30]`, numbered as there: conv i, ReLU i+1, max-pools at 4, 9, 16, 23.

    Returns the ReLU output ending each block (relu1_2 ... relu5_3): the five LPIPS slices [0:4], ..., [23:30].
    """

    def __init__(self, widths: tuple[int, ...] = VGG16_WIDTHS, **kw):
        layers, channels = [], 3
        for block, (width, depth) in enumerate(zip(widths, VGG16_DEPTHS, strict=True)):
            if block:
                layers.append(None)  # max-pool
            for _ in range(depth):
                layers += [Conv2d(channels, width, 3, **kw), None]  # conv, ReLU
                channels = width
        self.features = nnx.List(layers)

    def __call__(self, x: jax.Array) -> list[jax.Array]:
        taps, i = [], 0
        for block, depth in enumerate(VGG16_DEPTHS):
            if block:
                x, i = max_pool(x), i + 1
            for _ in range(depth):
                x, i = jax.nn.relu(self.features[i](x)), i + 2
            taps.append(x)
        return taps


def unit_normalize(f: jax.Array) -> jax.Array:
    """`f / (sqrt(sum_c f^2) + 1e-10)` over the channel axis (eps outside the sqrt, as the reference).

    Where all channels are 0 the sqrt's gradient is taken as 0 (torch's would be NaN); values are unchanged.
    """
    sumsq = jnp.sum(f * f, axis=-1, keepdims=True)
    norm = jnp.where(sumsq > 0, jnp.sqrt(jnp.where(sumsq > 0, sumsq, 1.0)), 0.0)
    return f / (norm + NORM_EPS)


def dropout(x: jax.Array, key: jax.Array | None) -> jax.Array:
    """Elementwise Dropout(0.5) with 1/(1-p) scaling (torch train mode); identity when `key` is None."""
    if key is None:
        return x
    keep = jax.random.bernoulli(key, 1.0 - DROPOUT_RATE, x.shape)
    return jnp.where(keep, x / (1.0 - DROPOUT_RATE), 0.0)


class LPIPS(nnx.Module):
    """Perceptual distance `[N]` between image pairs `[N, H, W, 3]` in [-1, 1].

    Per VGG tap: unit-normalise both features, square the difference, Dropout(0.5) (only when `dropout_key` is
    given: the reference trains with it active), a 1x1 conv to one channel without bias, spatial mean; then sum.
    """

    def __init__(self, widths: tuple[int, ...] = VGG16_WIDTHS, *, dtype=jnp.float32, param_dtype=jnp.float32):
        kw = dict(dtype=dtype, param_dtype=param_dtype)
        self.scaling_layer = ScalingLayer(param_dtype)
        self.net = VGG16Features(widths, **kw)
        self.lins = nnx.List([Conv2d(width, 1, 1, use_bias=False, **kw) for width in widths])

    def __call__(self, x0: jax.Array, x1: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        taps = self.net(self.scaling_layer(jnp.concatenate([x0, x1])))
        keys = jax.random.split(dropout_key, len(taps)) if dropout_key is not None else [None] * len(taps)
        total = jnp.zeros((x0.shape[0],), jnp.float32)
        for lin, f, key in zip(self.lins, taps, keys):
            f = unit_normalize(f.astype(jnp.float32))
            f0, f1 = jnp.split(f, 2)
            total = total + jnp.mean(lin(dropout((f0 - f1) ** 2, key)), axis=(1, 2, 3))
        return total
