"""LPIPS: parity with a torch reference written from vae_spec.md §5.2, conversion of `vgg_lpips.pth`, hard failures."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from safetensors.numpy import save_file
from torch import nn

from pyramid_jax.convert.engine import ConversionError, plan
from pyramid_jax.convert.lpips_table import LPIPS_TABLE
from pyramid_jax.io.weights import flat_shapes
from pyramid_jax.vae_training.lpips import LPIPS, unit_normalize
from pyramid_jax.vae_training.lpips_load import abstract_lpips, convert_lpips, load_lpips

SMALL = (4, 8, 8, 16, 16)  # reduced VGG widths for the math tests
SLICES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))  # §5.2 slice table


def vgg16_cfg(widths):
    """torchvision's VGG16 config "D" with its five widths replaced."""
    w = widths
    return [w[0], w[0], "M", w[1], w[1], "M", w[2], w[2], w[2], "M", w[3], w[3], w[3], "M", w[4], w[4], w[4], "M"]


def spec_keys(widths):
    """The `vgg_lpips.pth` keys and torch shapes listed in §5.2."""
    keys = {"scaling_layer.shift": (1, 3, 1, 1), "scaling_layer.scale": (1, 3, 1, 1)}
    convs = {1: (0, 2), 2: (5, 7), 3: (10, 12, 14), 4: (17, 19, 21), 5: (24, 26, 28)}
    channels = 3
    for s, indices in convs.items():
        for i in indices:
            keys[f"net.slice{s}.{i}.weight"] = (widths[s - 1], channels, 3, 3)
            keys[f"net.slice{s}.{i}.bias"] = (widths[s - 1],)
            channels = widths[s - 1]
    for k, c in enumerate(widths):
        keys[f"lin{k}.model.1.weight"] = (1, c, 1, 1)
    return keys


class TorchLPIPS(nn.Module):
    """The reference LPIPS from the spec: VGG16 features cut into 5 slices, scaling layer, Dropout + 1x1 lin."""

    def __init__(self, widths):
        super().__init__()
        features, channels = [], 3
        for v in vgg16_cfg(widths):
            if v == "M":
                features.append(nn.MaxPool2d(2, 2))
            else:
                features += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=True)]
                channels = v
        self.scaling_layer = nn.Module()
        self.scaling_layer.register_buffer("shift", torch.tensor([-.030, -.088, -.188])[None, :, None, None])
        self.scaling_layer.register_buffer("scale", torch.tensor([.458, .448, .450])[None, :, None, None])
        self.net = nn.Module()
        for s, (a, b) in enumerate(SLICES):
            block = nn.Sequential()
            for x in range(a, b):
                block.add_module(str(x), features[x])
            setattr(self.net, f"slice{s + 1}", block)
        for k, c in enumerate(widths):
            lin = nn.Module()
            lin.model = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))
            setattr(self, f"lin{k}", lin)

    def forward(self, x0, x1, masks=None):
        """`[N, 1, 1, 1]`; `masks` (keep masks, NCHW) stand for the train-mode dropout draws."""
        h0 = (x0 - self.scaling_layer.shift) / self.scaling_layer.scale
        h1 = (x1 - self.scaling_layer.shift) / self.scaling_layer.scale
        total = 0
        for k in range(5):
            block = getattr(self.net, f"slice{k + 1}")
            h0, h1 = block(h0), block(h1)
            n0 = h0 / (torch.sqrt(torch.sum(h0 ** 2, dim=1, keepdim=True)) + 1e-10)
            n1 = h1 / (torch.sqrt(torch.sum(h1 ** 2, dim=1, keepdim=True)) + 1e-10)
            d = (n0 - n1) ** 2
            lin = getattr(self, f"lin{k}").model
            out = lin(d) if masks is None else lin[1](d * masks[k] / 0.5)
            total = total + out.mean([2, 3], keepdim=True)
        return total


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    model = TorchLPIPS(SMALL).eval()
    with torch.no_grad():
        model.scaling_layer.shift += 0.01 * torch.randn(1, 3, 1, 1)  # differ from the defaults: must be loaded
        model.scaling_layer.scale += 0.01 * torch.randn(1, 3, 1, 1)
        for k in range(5):
            getattr(model, f"lin{k}").model[1].weight.uniform_(0, 1)
    return model


@pytest.fixture(scope="module")
def pth_dir(reference, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lpips_pth")
    torch.save(reference.state_dict(), folder / "vgg_lpips.pth")
    return folder


@pytest.fixture(scope="module")
def state(reference):
    return {k: v.numpy().copy() for k, v in reference.state_dict().items()}


def pairs(n=2, h=36, w=44):
    """Image pairs `[N, H, W, 3]` in [-1, 1]; odd sizes appear after the pools (36 -> 18 -> 9 -> 4 -> 2)."""
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, (n, h, w, 3)).astype(np.float32)
    x1 = np.clip(x0 + 0.3 * rng.standard_normal(x0.shape), -1, 1).astype(np.float32)
    return x0, x1


def nchw(x):
    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


def test_reference_state_dict_has_the_spec_keys(state):
    assert {k: v.shape for k, v in state.items()} == spec_keys(SMALL)


def test_matches_torch_values(reference, pth_dir):
    lpips = load_lpips(str(pth_dir), widths=SMALL, allow_pickle=True)
    x0, x1 = pairs()
    expected = reference(nchw(x0), nchw(x1)).detach().numpy().reshape(2)
    values, same = nnx.jit(lambda m, a, b: (m(a, b), m(a, a)))(lpips, jnp.asarray(x0), jnp.asarray(x1))
    assert values.shape == (2,)
    np.testing.assert_allclose(values, expected, rtol=1e-5)
    np.testing.assert_allclose(same, 0.0, atol=1e-7)


def test_input_gradient_matches_torch_autograd(reference, pth_dir):
    lpips = load_lpips(str(pth_dir), widths=SMALL, allow_pickle=True)
    x0, x1 = pairs()
    t1 = nchw(x1).requires_grad_(True)
    (expected,) = torch.autograd.grad(reference(nchw(x0), t1).sum(), t1)
    expected = np.transpose(expected.numpy(), (0, 2, 3, 1))
    grad = nnx.jit(lambda m, a, b: jax.grad(lambda b: m(a, b).sum())(b))(lpips, jnp.asarray(x0), jnp.asarray(x1))
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


def test_training_dropout_matches_torch_with_the_same_masks(reference, pth_dir):
    lpips = load_lpips(str(pth_dir), widths=SMALL, allow_pickle=True)
    x0, x1 = pairs()
    key = jax.random.key(3, impl="rbg")  # rbg: compiles fast
    shapes = [(2, 36, 44, 4), (2, 18, 22, 8), (2, 9, 11, 8), (2, 4, 5, 16), (2, 2, 2, 16)]
    masks = jax.jit(lambda k: [jax.random.bernoulli(k, 0.5, s) for k, s in zip(jax.random.split(k, 5), shapes)])(key)
    masks = [np.asarray(m) for m in masks]
    expected = reference(nchw(x0), nchw(x1), masks=[nchw(m.astype(np.float32)) for m in masks])
    ours, plain = nnx.jit(lambda m, a, b: (m(a, b, dropout_key=key), m(a, b)))(lpips, jnp.asarray(x0), jnp.asarray(x1))
    np.testing.assert_allclose(ours, expected.detach().numpy().reshape(2), rtol=1e-5)
    assert not np.allclose(ours, plain, rtol=1e-3)


def test_unit_normalize_has_finite_gradient_where_all_channels_are_zero():
    f = jnp.asarray(np.random.default_rng(0).standard_normal((1, 2, 2, 4)), jnp.float32).at[0, 1, 0].set(0.0)
    grad = jax.grad(lambda f: jnp.sum(unit_normalize(f) * jnp.arange(4.0)))(f)
    assert np.isfinite(grad).all()  # torch: NaN from the sqrt at 0; here only the direct term f / 1e-10 remains
    np.testing.assert_allclose(grad[0, 1, 0], np.arange(4.0) / 1e-10, rtol=1e-6)
    np.testing.assert_allclose(unit_normalize(f)[0, 0, 0], f[0, 0, 0] / (np.linalg.norm(f[0, 0, 0]) + 1e-10))


def test_weights_are_frozen_buffers():
    lpips = LPIPS(SMALL)
    assert not nnx.state(lpips, nnx.Param)
    assert len(nnx.to_flat_state(nnx.state(lpips))) == len(spec_keys(SMALL))


def test_release_keys_convert_to_exact_shapes():
    _, abstract = abstract_lpips()  # full VGG16 widths, nothing allocated
    expected = flat_shapes(abstract)
    steps = {s.key: s.path for s in plan(LPIPS_TABLE, spec_keys((64, 128, 256, 512, 512)), expected)}
    assert len(steps) == len(expected) == 33
    assert steps["net.slice3.14.weight"] == ("net", "features", 14, "kernel")
    assert expected[("net", "features", 28, "kernel")] == (3, 3, 512, 512)
    assert steps["lin4.model.1.weight"] == ("lins", 4, "kernel")
    assert expected[("lins", 2, "kernel")] == (1, 1, 256, 1)
    assert expected[("scaling_layer", "shift")] == (1, 1, 1, 3)


def test_safetensors_pth_and_converted_folder_load_the_same(state, pth_dir, tmp_path):
    save_file(state, str(tmp_path / "vgg_lpips.safetensors"))
    convert_lpips(str(pth_dir), str(tmp_path / "converted"), widths=SMALL, allow_pickle=True)
    loaded = [load_lpips(p, widths=SMALL, allow_pickle=True)
              for p in (str(pth_dir / "vgg_lpips.pth"), str(tmp_path), str(tmp_path / "converted"))]
    flats = [dict(nnx.to_flat_state(nnx.state(m))) for m in loaded]
    for path, var in flats[0].items():
        for other in flats[1:]:
            np.testing.assert_array_equal(np.asarray(var.get_value()), np.asarray(other[path].get_value()))
    np.testing.assert_array_equal(flats[0][("net", "features", 5, "kernel")].get_value(),
                                  np.transpose(state["net.slice2.5.weight"], (2, 3, 1, 0)))
    with pytest.raises(ValueError, match="allow_pickle"):
        load_lpips(str(pth_dir), widths=SMALL)


def test_missing_misshaped_and_misplaced_keys_fail_naming_them(state, tmp_path):
    broken = dict(state)
    del broken["net.slice3.12.bias"]
    broken["lin2.model.1.weight"] = np.zeros((1, 7, 1, 1), np.float32)
    broken["net.slice1.5.weight"] = broken.pop("net.slice2.5.weight")  # layer 5 belongs to slice 2
    save_file(broken, str(tmp_path / "vgg_lpips.safetensors"))
    with pytest.raises(ConversionError) as err:
        load_lpips(str(tmp_path), widths=SMALL)
    text = str(err.value)
    assert "2 missing" in text and "net/features/12/bias" in text and "net/features/5/kernel" in text
    assert "1 unexpected" in text and "net.slice1.5.weight" in text
    assert "1 mis-shaped" in text and "lin2.model.1.weight: checkpoint [1, 7, 1, 1]" in text
