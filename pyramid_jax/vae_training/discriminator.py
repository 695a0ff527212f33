"""The optional GAN of VAE training (vae_spec.md §5.3): a 2-D PatchGAN applied per frame, and its losses.

Disabled in the released recipe. `main` mirrors the torch `nn.Sequential` numbering (convs at 0, 2, 5, 8, 11, 14).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

LEAKY_SLOPE = 0.2
NORM_EPS = 1e-5
WEIGHT_EPS = 1e-4
MAX_WEIGHT = 1e4


class PatchConv(nnx.Module):
    """4x4 conv with padding 1 over `[N, H, W, C]`; weights N(0, 0.02), bias 0."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, *, rngs: nnx.Rngs, dtype=jnp.float32,
                 param_dtype=jnp.float32):
        self.kernel = nnx.Param(nnx.initializers.normal(0.02)(rngs.params(), (4, 4, in_channels, out_channels),
                                                              param_dtype))
        self.bias = nnx.Param(jnp.zeros((out_channels,), param_dtype))
        self.stride = stride
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype), self.kernel[...].astype(self.dtype), window_strides=(self.stride,) * 2,
            padding=((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"), preferred_element_type=jnp.float32)
        return y + self.bias[...].astype(jnp.float32)


def instance_norm(x: jax.Array) -> jax.Array:
    """InstanceNorm2d without affine or running stats: per sample and channel over H, W (biased variance)."""
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=(1, 2), keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + NORM_EPS)


class NLayerDiscriminator(nnx.Module):
    """PatchGAN logits `[..., h, w, 1]` for images `[..., H, W, input_nc]` (a video `[B, T, H, W, C]` per frame).

    conv s2 + LeakyReLU, then `n_layers - 1` conv s2 + InstanceNorm + LeakyReLU and one at s1 (widths ndf * 2^n,
    at most 8 ndf), then a conv s1 to one channel. 256x256 in gives 14x14 out.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 4, *, rngs: nnx.Rngs, dtype=jnp.float32,
                 param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        widths = [input_nc] + [ndf * min(2 ** n, 8) for n in range(n_layers + 1)]
        layers = [PatchConv(widths[0], widths[1], 2, **kw), None]  # conv, LeakyReLU
        for n in range(1, n_layers + 1):  # conv, InstanceNorm, LeakyReLU
            layers += [PatchConv(widths[n], widths[n + 1], 2 if n < n_layers else 1, **kw), None, None]
        layers.append(PatchConv(widths[-1], 1, 1, **kw))
        self.main = nnx.List(layers)

    def __call__(self, x: jax.Array) -> jax.Array:
        lead = x.shape[:-3]
        h = x.reshape((-1,) + x.shape[-3:])
        convs = [layer for layer in self.main if layer is not None]
        for i, conv in enumerate(convs[:-1]):
            h = conv(h)
            h = jax.nn.leaky_relu(instance_norm(h) if i else h, LEAKY_SLOPE)
        h = convs[-1](h)
        return h.reshape(lead + h.shape[1:])


def generator_loss(logits_fake: jax.Array) -> jax.Array:
    """`g = -mean(D(recon))`."""
    return -jnp.mean(logits_fake)


def hinge_discriminator_loss(logits_real: jax.Array, logits_fake: jax.Array) -> jax.Array:
    """`0.5 * (mean relu(1 - D(x)) + mean relu(1 + D(recon)))`; the discriminator step multiplies by `disc_factor`."""
    return 0.5 * (jnp.mean(jax.nn.relu(1.0 - logits_real)) + jnp.mean(jax.nn.relu(1.0 + logits_fake)))


def adaptive_weight(nll_grad: jax.Array, g_grad: jax.Array, disc_weight: float) -> jax.Array:
    """`clamp(|dnll/dW| / (|dg/dW| + 1e-4), 0, 1e4) * disc_weight`, no gradient through it.

    The two arguments are the gradients of the scalar nll and generator losses w.r.t. the decoder's last conv
    kernel (`decoder.conv_out.kernel`); the L2 norms do not depend on its layout.
    """
    ratio = _l2_norm(nll_grad) / (_l2_norm(g_grad) + WEIGHT_EPS)
    return jax.lax.stop_gradient(jnp.clip(ratio, 0.0, MAX_WEIGHT)) * disc_weight


def _l2_norm(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(jnp.square(x.astype(jnp.float32))))


def disc_factor(step: jax.Array | int, disc_start: int) -> jax.Array:
    """1.0 once `step >= disc_start`, else 0.0 (works on a traced step)."""
    return jnp.where(jnp.asarray(step) >= disc_start, 1.0, 0.0)
