"""SD3-style MM-DiT: parity with the PyTorch reference (fixtures), sincos table, conversion, sharding, input checks."""

import json
import shutil

import jax
import numpy as np
import pytest
from flax import nnx

import pyramid_jax
from pyramid_jax.config import ConfigError
from pyramid_jax.convert import engine
from pyramid_jax.convert.dit_tables import MMDIT_TABLE
from pyramid_jax.dit.apply import dit_forward
from pyramid_jax.dit.config import MMDiTConfig
from pyramid_jax.dit.families import dit_config_from_dict
from pyramid_jax.dit.load import abstract_dit, read_dit_config
from pyramid_jax.dit.patch_embed import PatchEmbed, resize_bilinear, sincos_pos_embed
from pyramid_jax.io.weights import flat_shapes
from pyramid_jax.layers.buffer import Buffer
from pyramid_jax.parallel.compiled import PlacedModel

from conftest import FIXTURES
from flux_cases import case_names, load_case

MODEL = str(FIXTURES / "dit_mmdit" / "model")
WEIGHTS = FIXTURES / "dit_mmdit" / "model" / "diffusion_pytorch_model.safetensors"
CASES = np.load(FIXTURES / "dit_mmdit" / "cases.npz")
# fp32 at highest matmul precision against torch fp32, outputs of size ~3; we reach ~2.2e-5 (dit_spec.md §10: 2e-4).
ATOL, RTOL = 4e-5, 1e-5


@pytest.fixture(scope="module")
def mmdit():
    return pyramid_jax.load_dit(MODEL)


@pytest.fixture(scope="module")
def mmdit_own_crops():
    """The same weights with `interp_condition_pos=False`: every clip takes its own centred crop (fixture case4)."""
    return pyramid_jax.load_dit(MODEL, interp_condition_pos=False)


def _checkpoint() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(WEIGHTS)


@pytest.mark.parametrize("case", case_names(CASES))
def test_matches_reference(mmdit, mmdit_own_crops, case):
    args, expected = load_case(CASES, case)
    model = mmdit_own_crops if case == "case4" else mmdit
    outputs = model(*args)
    assert len(outputs) == len(expected)
    for out, ref in zip(outputs, expected):
        assert out.shape == ref.shape
        np.testing.assert_allclose(np.asarray(out), ref, rtol=RTOL, atol=ATOL)


def test_interp_condition_pos_changes_the_reference_output():
    """case4 only differs from case2 by the flag, and by far more than ATOL: the parity test exercises it."""
    assert np.abs(CASES["case4/output/s0"] - CASES["case2/output/s0"]).max() > 100 * ATOL


def test_sincos_table_equals_checkpoint_buffer(mmdit):
    cfg = mmdit.config
    table = np.asarray(sincos_pos_embed(cfg.pos_embed_max_size, cfg.inner_dim, cfg.base_size))
    np.testing.assert_array_equal(table, _checkpoint()["pos_embed.pos_embed"])
    assert isinstance(mmdit.pos_embed.pos_embed, Buffer) and not isinstance(mmdit.pos_embed.pos_embed, nnx.Param)
    fresh = PatchEmbed(cfg.in_channels, cfg.inner_dim, cfg.patch_size, cfg.pos_embed_max_size, cfg.base_size,
                       interp_condition_pos=True, rngs=nnx.Rngs(0))  # what a model built from scratch holds
    np.testing.assert_array_equal(np.asarray(fresh.pos_embed[...]), table)


@pytest.mark.parametrize("src, dst", [((8, 12), (4, 6)), ((16, 24), (4, 6)), ((7, 5), (3, 2)), ((6, 9), (6, 4))])
def test_resize_matches_torch_bilinear(src, dst):
    import torch

    image = np.random.default_rng(0).normal(size=(*src, 8)).astype(np.float32)
    want = torch.nn.functional.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None], size=dst,
                                           mode="bilinear", align_corners=False, antialias=False)
    got = resize_bilinear(jax.numpy.asarray(image), *dst)
    np.testing.assert_allclose(np.asarray(got), want[0].permute(1, 2, 0).numpy(), rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def release():
    """(config, torch key -> shape, NNX path -> shape) for the released 768p checkpoint; nothing is allocated."""
    listing = json.loads((FIXTURES / "release_shapes" / "sd3_dit.json").read_text())
    config = dit_config_from_dict({"_class_name": "PyramidDiffusionMMDiT", **listing["released_config"]},
                                  **listing["pipeline_load_overrides"])
    shapes = {key: tuple(shape) for key, shape, *_ in listing["state_dict"]}
    return config, shapes, flat_shapes(abstract_dit(config)[1])  # nnx.eval_shape


def test_release_checkpoint_plans_onto_abstract_model(release):
    config, shapes, expected = release
    assert config.inner_dim == 1536 and config.interp_condition_pos and config.use_temporal_causal
    steps = engine.plan(MMDIT_TABLE, shapes, expected)
    assert len(steps) == len(expected) == len(shapes) == 779
    by_key = {s.key: s.path for s in steps}
    assert expected[by_key["pos_embed.pos_embed"]] == (1, 192 * 192, 1536)
    assert expected[by_key["pos_embed.proj.weight"]] == (2, 2, 16, 1536)
    assert by_key["transformer_blocks.23.attn.norm_add_k.weight"] == (
        "transformer_blocks", 23, "attn", "norm_added_k", "scale")
    assert expected[by_key["transformer_blocks.23.norm1_context.linear.weight"]] == (1536, 2 * 1536)


@pytest.mark.parametrize("edit, named", [
    (lambda s: s.pop("transformer_blocks.5.attn.norm_add_q.weight"), "transformer_blocks/5/attn/norm_added_q/scale"),
    (lambda s: s.update({"transformer_blocks.23.attn.to_add_out.weight": (1536, 1536)}),
     "transformer_blocks.23.attn.to_add_out.weight"),
    (lambda s: s.update({"pos_embed.proj.weight": (1536, 16, 1, 1)}), "pos_embed.proj.weight"),
    (lambda s: s.update({"pos_embed.pos_embed": (1, 128 * 128, 1536)}), "pos_embed.pos_embed"),
])
def test_checkpoint_mismatch_names_the_key(release, edit, named):
    _, shapes, expected = release
    shapes = dict(shapes)
    edit(shapes)
    with pytest.raises(engine.ConversionError, match=named.replace(".", r"\.")):
        engine.plan(MMDIT_TABLE, shapes, expected)


def test_pickled_bin_checkpoint_loads_to_the_same_arrays(tmp_path, mmdit):
    import torch

    shutil.copy(FIXTURES / "dit_mmdit" / "model" / "config.json", tmp_path / "config.json")
    torch.save({k: torch.from_numpy(v) for k, v in _checkpoint().items()}, tmp_path / "diffusion_pytorch_model.bin")
    with pytest.raises(ValueError, match="allow_pickle=True"):
        pyramid_jax.load_dit(str(tmp_path))
    from_bin = pyramid_jax.load_dit(str(tmp_path), allow_pickle=True)
    want = dict(nnx.to_flat_state(nnx.state(mmdit)))
    got = dict(nnx.to_flat_state(nnx.state(from_bin)))
    assert got.keys() == want.keys()
    for path, var in want.items():
        np.testing.assert_array_equal(np.asarray(got[path].get_value()), np.asarray(var.get_value()), err_msg=path)


def test_sharded_forward_equals_single_device(mmdit):
    assert jax.device_count() == 8
    args, _ = load_case(CASES, "case2")
    single = mmdit(*args)

    mesh = pyramid_jax.make_mesh(data=2, fsdp=2, tensor=2)
    sharded = PlacedModel(pyramid_jax.load_dit(MODEL), mesh)
    kernel = sharded.state["pos_embed"]["proj"]["kernel"].get_value()
    assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, None, None, "fsdp")
    table = sharded.state["pos_embed"]["pos_embed"].get_value()
    assert table.sharding.spec == jax.sharding.PartitionSpec(None, None, "fsdp")
    for got, want in zip(dit_forward(sharded, *sharded.place(args)), single):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_bf16_load_runs_close_to_fp32():
    """bf16 weights, sincos buffer included (the reference casts buffers with the model), on resized history."""
    model = pyramid_jax.load_dit(MODEL, dtype=jax.numpy.bfloat16)
    assert model.pos_embed.pos_embed.get_value().dtype == jax.numpy.bfloat16
    args, expected = load_case(CASES, "case3")
    bf16 = jax.tree.map(lambda x: x.astype(jax.numpy.bfloat16) if x.dtype == np.float32 else x, args)
    out = model(*bf16)[0]
    assert out.dtype == jax.numpy.bfloat16
    err = np.abs(np.asarray(out, np.float32) - expected[0]).max()
    assert err < 0.1 * np.abs(expected[0]).max(), err


def _with_sample(args, sample):
    return (sample,) + args[1:]


@pytest.mark.parametrize("sample, message", [
    (lambda c: [[np.zeros((2, 1, 50, 12, 4), np.float32)]], "pos_embed_max_size 24"),
    (lambda c: [[c[:, :, :7]]], "even"),
    (lambda c: [[]], "no clips"),
    (lambda c: [[np.concatenate([c, c], axis=3), c]], "larger than the current clip"),
])
def test_bad_input_is_a_clear_error(mmdit, sample, message):
    args, _ = load_case(CASES, "case1")
    with pytest.raises(ValueError, match=message):
        mmdit(*_with_sample(args, sample(args[0][0][0])))


@pytest.mark.parametrize("change, message", [
    (dict(caption_projection_dim=48), "caption_projection_dim"),
    (dict(pos_embed_type="rope"), "pos_embed_type"),
    (dict(temp_pos_embed_type="sincos"), "temp_pos_embed_type"),
    (dict(add_temp_pos_embed=False), "use_temporal_causal"),
    (dict(qk_norm="layer_norm"), "qk_norm"),
    (dict(patch_size=1), "patch_size"),
])
def test_config_rejects_unsupported_settings(change, message):
    with pytest.raises(ConfigError, match=message):
        read_dit_config(MODEL, **change)
    assert isinstance(read_dit_config(MODEL), MMDiTConfig)
