"""miniFLUX DiT parity with the PyTorch reference (fixtures), jit, sharding and input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pyramid_jax
from pyramid_jax.dit.apply import dit_forward
from pyramid_jax.parallel.compiled import PlacedModel

from conftest import FIXTURES
from flux_cases import case_names, load_case

CASES = np.load(FIXTURES / "dit_flux" / "cases.npz")
# fp32 at highest matmul precision against torch fp32, outputs of size ~3 (dit_spec.md §10 suggests 2e-4).
ATOL, RTOL = 4e-5, 1e-5


@pytest.fixture(scope="module")
def flux():
    return pyramid_jax.load_dit(str(FIXTURES / "dit_flux" / "model"))


@pytest.mark.parametrize("case", case_names(CASES))
def test_matches_reference(flux, case):
    args, expected = load_case(CASES, case)
    outputs = flux(*args)
    assert len(outputs) == len(expected)
    for out, ref in zip(outputs, expected):
        assert out.shape == ref.shape
        np.testing.assert_allclose(np.asarray(out), ref, rtol=RTOL, atol=ATOL)


def test_snapshot_dit_matches_recorded_sampler_call():
    """The tiny snapshot's DiT (64-d heads, RoPE axes 16/24/24) on the recorded unit-1 stage-2 sampler call."""
    dit = pyramid_jax.load_dit(str(FIXTURES / "snapshots" / "miniflux_tiny" / "diffusion_transformer_384p"))
    args, expected = load_case(np.load(FIXTURES / "sampler" / "t2v_unit1_stage2_first_dit_call.npz"), "")
    np.testing.assert_allclose(np.asarray(dit(*args)[0]), expected[0], rtol=RTOL, atol=ATOL)


def test_jitted_pure_function_matches_module(flux):
    args, _ = load_case(CASES, "case2")
    before = dit_forward.num_programs()
    for got, want in zip(dit_forward(PlacedModel(flux), *args), flux(*args)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
    compiled = dit_forward.num_programs()
    assert compiled - before <= 1  # none when an earlier test ran these shapes
    dit_forward(PlacedModel(flux), *args)
    assert dit_forward.num_programs() == compiled


def test_sharded_forward_equals_single_device(flux):
    assert jax.device_count() == 8
    args, _ = load_case(CASES, "case2")
    single = dit_forward(PlacedModel(flux), *args)

    mesh = pyramid_jax.make_mesh(data=2, fsdp=2, tensor=2)
    sharded = PlacedModel(pyramid_jax.load_dit(str(FIXTURES / "dit_flux" / "model")), mesh)
    kernel = sharded.state["transformer_blocks"][0]["attn"]["to_q"]["kernel"].get_value()
    assert kernel.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    for got, want in zip(dit_forward(sharded, *sharded.place(args)), single):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_load_with_mesh_places_parameters(flux):
    mesh = pyramid_jax.make_mesh(data=1, fsdp=4, tensor=2)
    model = pyramid_jax.load_dit(str(FIXTURES / "dit_flux" / "model"), mesh=mesh)
    kernel = model.single_transformer_blocks[1].proj_mlp.kernel.get_value()
    assert kernel.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    np.testing.assert_array_equal(np.asarray(kernel), np.asarray(flux.single_transformer_blocks[1].proj_mlp.kernel))


def test_bf16_load_runs_close_to_fp32(flux):
    model = pyramid_jax.load_dit(str(FIXTURES / "dit_flux" / "model"), dtype=jnp.bfloat16)
    assert model.x_embedder.kernel.get_value().dtype == jnp.bfloat16
    args, expected = load_case(CASES, "case1")
    out = model(*jax.tree.map(lambda x: x.astype(jnp.bfloat16) if x.dtype == jnp.float32 else x, args))[0]
    assert out.dtype == jnp.bfloat16
    err = np.abs(np.asarray(out, np.float32) - expected[0]).max()
    assert err < 0.1 * np.abs(expected[0]).max(), err


@pytest.mark.parametrize("mutate, message", [
    (lambda a: ([[a[0][0][0][..., :3]]],) + a[1:], "channels"),
    (lambda a: ([[a[0][0][0][:, :, :7]]],) + a[1:], "even"),
    (lambda a: ([[]],) + a[1:], "no clips"),
    (lambda a: ([],) + a[1:], "non-empty list"),
    (lambda a: (a[0], a[1][:1]) + a[2:], "encoder_hidden_states"),
    (lambda a: a[:4] + (a[4][:1],), "timestep_ratio"),
    (lambda a: ([[a[0][0][0], a[0][0][0][:, :, :4, :6]]],) + a[1:], "larger than the current clip"),
])
def test_bad_input_is_a_clear_error(flux, mutate, message):
    args, _ = load_case(CASES, "case1")
    args = mutate(args)
    with pytest.raises(ValueError, match=message):
        flux(*args)


def test_overrides_and_unknown_fields(tmp_path):
    from pyramid_jax.config import ConfigError

    path = str(FIXTURES / "dit_flux" / "model")
    assert pyramid_jax.load_dit(path, use_temporal_causal=False).config.use_temporal_causal is False
    with pytest.raises(ConfigError, match="num_layerz"):
        pyramid_jax.load_dit(path, num_layerz=3)


def test_blockwise_backend_matches_reference():
    flux = pyramid_jax.load_dit(str(FIXTURES / "dit_flux" / "model"), attention_backend="blockwise")
    for case in case_names(CASES):
        args, expected = load_case(CASES, case)
        for out, ref in zip(flux(*args), expected):
            np.testing.assert_allclose(np.asarray(out), ref, rtol=RTOL, atol=ATOL)


def test_blockwise_on_a_sequence_mesh_equals_single_device(flux):
    """Traced on a data=2, sequence=4 mesh, the blockwise attention runs per device (shard_map)."""
    args, _ = load_case(CASES, "case2")
    single = dit_forward(PlacedModel(flux), *args)
    mesh = pyramid_jax.make_mesh(data=2, sequence=4)
    model = PlacedModel(pyramid_jax.load_dit(str(FIXTURES / "dit_flux" / "model"), attention_backend="blockwise"),
                        mesh)
    for got, want in zip(dit_forward(model, *model.place(args)), single):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
