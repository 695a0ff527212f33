"""PatchGAN discriminator and GAN losses: parity with torch layers and autograd (vae_spec.md §5.3)."""

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from flax import nnx
from torch import nn

from pyramid_jax.io.weights import abstract_module, materialize
from pyramid_jax.vae_training.discriminator import (NLayerDiscriminator, adaptive_weight, disc_factor,
                                                    generator_loss, hinge_discriminator_loss)

CONVS = (0, 2, 5, 8, 11, 14)  # torch `main` indices of the convs


class TorchDiscriminator(nn.Module):
    """The §5.3 table as an `nn.Sequential` named `main` (n_layers = 4)."""

    def __init__(self, ndf):
        super().__init__()
        c = [3, ndf, 2 * ndf, 4 * ndf, 8 * ndf, 8 * ndf]
        layers = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for i, stride in zip(range(1, 5), (2, 2, 2, 1)):
            layers += [nn.Conv2d(c[i], c[i + 1], 4, stride, 1), nn.InstanceNorm2d(c[i + 1]), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(8 * ndf, 1, 4, 1, 1))
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x)


def test_matches_torch_per_frame():
    torch.manual_seed(0)
    ref = TorchDiscriminator(8)
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, 0.02)
                m.bias.normal_(0, 0.02)
    state = ref.state_dict()
    assert sorted(state) == sorted(f"main.{i}.{p}" for i in CONVS for p in ("weight", "bias"))
    graphdef, abstract = abstract_module(lambda: NLayerDiscriminator(3, 8, 4, rngs=nnx.Rngs(0)))
    arrays = [(("main", i, "kernel"), state[f"main.{i}.weight"].numpy().transpose(2, 3, 1, 0)) for i in CONVS]
    disc = materialize(graphdef, abstract, arrays + [(("main", i, "bias"), state[f"main.{i}.bias"].numpy())
                                                     for i in CONVS])
    video = np.random.default_rng(0).uniform(-1, 1, (2, 3, 64, 64, 3)).astype(np.float32)  # [B, T, H, W, C]
    expected = ref(torch.from_numpy(video.reshape(6, 64, 64, 3).transpose(0, 3, 1, 2).copy())).detach().numpy()
    ours = nnx.jit(lambda d, v: d(v))(disc, jnp.asarray(video))
    assert ours.shape == (2, 3, 2, 2, 1)
    np.testing.assert_allclose(ours.reshape(6, 2, 2, 1), expected.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)


def test_full_size_shapes_and_init():
    abstract = nnx.eval_shape(lambda: NLayerDiscriminator(rngs=nnx.Rngs(0)))
    assert nnx.eval_shape(lambda d, x: d(x), abstract, jnp.zeros((2, 256, 256, 3))).shape == (2, 14, 14, 1)
    torch_shapes = {0: (64, 3), 2: (128, 64), 5: (256, 128), 8: (512, 256), 11: (512, 512), 14: (1, 512)}
    for i, (o, c) in torch_shapes.items():
        assert abstract.main[i].kernel.shape == (4, 4, c, o)
    disc = NLayerDiscriminator(ndf=16, rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))  # rbg: compiles fast
    kernel = np.asarray(disc.main[11].kernel[...])  # 4 * 4 * 128 * 128 draws
    assert abs(kernel.mean()) < 1e-3 and abs(kernel.std() - 0.02) < 5e-4
    assert all(not np.asarray(disc.main[i].bias[...]).any() for i in torch_shapes)


def test_generator_and_hinge_losses_match_torch_autograd():
    rng = np.random.default_rng(0)
    real, fake = (rng.standard_normal((2, 5, 5, 1)).astype(np.float32) * 2 for _ in range(2))
    tr, tf = torch.tensor(real, requires_grad=True), torch.tensor(fake, requires_grad=True)
    g_t = -torch.mean(tf)
    d_t = 0.5 * (torch.mean(F.relu(1.0 - tr)) + torch.mean(F.relu(1.0 + tf)))
    dg_t = torch.autograd.grad(g_t, tf)[0].numpy()
    dr_t, df_t = (g.numpy() for g in torch.autograd.grad(d_t, (tr, tf)))
    g, dg = jax.value_and_grad(generator_loss)(jnp.asarray(fake))
    d, (dr, df) = jax.value_and_grad(hinge_discriminator_loss, argnums=(0, 1))(jnp.asarray(real), jnp.asarray(fake))
    np.testing.assert_allclose(g, g_t.item(), rtol=1e-6)
    np.testing.assert_allclose(d, d_t.item(), rtol=1e-6)
    for ours, theirs in ((dg, dg_t), (dr, dr_t), (df, df_t)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9)


def test_adaptive_weight_matches_torch_autograd():
    """W plays the decoder's last conv; nll is 10 MSE, g is -mean of a conv 'discriminator' on the output."""
    rng = np.random.default_rng(0)
    h, x = rng.standard_normal((2, 4, 8, 8)).astype(np.float32), rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w, dw = rng.standard_normal((3, 4, 3, 3)).astype(np.float32) * 0.1, rng.standard_normal((1, 3, 3, 3))
    dw = dw.astype(np.float32)
    tw = torch.tensor(w, requires_grad=True)
    recon = F.conv2d(torch.tensor(h), tw, padding=1)
    nll_t = 10 * torch.mean((torch.tensor(x) - recon) ** 2)
    g_t = -torch.mean(F.conv2d(recon, torch.tensor(dw), padding=1))
    nll_grad_t = torch.autograd.grad(nll_t, tw, retain_graph=True)[0]
    g_grad_t = torch.autograd.grad(g_t, tw, retain_graph=True)[0]
    expected = torch.clamp(torch.norm(nll_grad_t) / (torch.norm(g_grad_t) + 1e-4), 0.0, 1e4).detach() * 0.5

    def conv(a, k):  # NHWC x HWIO
        return jax.lax.conv_general_dilated(a, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))

    h_cl, x_cl = jnp.asarray(h.transpose(0, 2, 3, 1)), jnp.asarray(x.transpose(0, 2, 3, 1))
    nll = lambda k: 10 * jnp.mean((x_cl - conv(h_cl, k)) ** 2)  # noqa: E731
    g = lambda k: -jnp.mean(conv(conv(h_cl, k), jnp.asarray(dw.transpose(2, 3, 1, 0))))  # noqa: E731
    kernel = jnp.asarray(w.transpose(2, 3, 1, 0))
    nll_grad, g_grad = jax.grad(nll)(kernel), jax.grad(g)(kernel)
    ours = adaptive_weight(nll_grad, g_grad, 0.5)
    np.testing.assert_allclose(ours, expected.item(), rtol=1e-5)
    np.testing.assert_allclose(adaptive_weight(nll_grad, jnp.zeros_like(g_grad), 0.5), 0.5e4)  # clamped
    assert float(adaptive_weight(jnp.zeros_like(nll_grad), g_grad, 0.5)) == 0.0
    assert not jax.grad(lambda a: adaptive_weight(a, g_grad, 0.5))(nll_grad).any()  # detached


def test_disc_factor_switches_on_at_disc_start():
    assert [float(disc_factor(s, 10)) for s in (0, 9, 10, 11)] == [0.0, 0.0, 1.0, 1.0]
    assert float(jax.jit(disc_factor, static_argnums=1)(jnp.int32(250_000), 250_000)) == 1.0
