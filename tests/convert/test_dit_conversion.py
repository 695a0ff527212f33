"""The converter engine on the miniFLUX DiT: release-size shapes, hard failures, the snapshot CLI, atomicity."""

import json
import os
import shutil

import jax
import ml_dtypes
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

import convert_torch_weights
import pyramid_jax
from pyramid_jax.convert.dit_tables import FLUX_TABLE
from pyramid_jax.convert.engine import ConversionError, plan
from pyramid_jax.convert.sources import open_torch_checkpoint
from pyramid_jax.dit.families import dit_config_from_dict
from pyramid_jax.dit.load import abstract_dit
from pyramid_jax.io.weights import flat_shapes

from conftest import FIXTURES

FLUX_MODEL = FIXTURES / "dit_flux" / "model"
SNAPSHOT = FIXTURES / "snapshots" / "miniflux_tiny"


def test_release_key_listing_converts_to_exact_shapes():
    release = json.loads((FIXTURES / "release_shapes" / "miniflux_dit.json").read_text())
    config = dit_config_from_dict({"_class_name": "PyramidFluxTransformer", **release["released_config"]})
    _, abstract = abstract_dit(config)  # eval_shape: nothing allocated
    expected = flat_shapes(abstract)
    steps = plan(FLUX_TABLE, {k: tuple(s) for k, s, _, _ in release["state_dict"]}, expected)
    assert len(steps) == release["num_tensors"] == len(expected) == 496
    assert sum(int(np.prod(s)) for s in expected.values()) == release["num_param_elements"]


def _fixture_shapes():
    return open_torch_checkpoint(str(FLUX_MODEL)).shapes()


def _expected():
    return flat_shapes(abstract_dit(pyramid_jax.dit.load.read_dit_config(str(FLUX_MODEL)))[1])


def test_missing_unexpected_and_misshaped_keys_are_all_reported():
    shapes = _fixture_shapes()
    del shapes["transformer_blocks.1.attn.norm_added_k.weight"]
    shapes["transformer_blocks.0.attn.to_extra.weight"] = (32, 32)
    shapes["proj_out.weight"] = (16, 33)
    with pytest.raises(ConversionError) as err:
        plan(FLUX_TABLE, shapes, _expected())
    text = str(err.value)
    assert "1 missing" in text and "transformer_blocks/1/attn/norm_added_k/scale" in text
    assert "1 unexpected" in text and "transformer_blocks.0.attn.to_extra.weight" in text
    assert "1 mis-shaped" in text and "proj_out.weight: checkpoint [16, 33]" in text


def test_loading_a_broken_checkpoint_fails_before_reading(tmp_path):
    tensors = load_file(str(FLUX_MODEL / "diffusion_pytorch_model.safetensors"))
    tensors.pop("norm_out.linear.bias")
    save_file(tensors, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    shutil.copy(FLUX_MODEL / "config.json", tmp_path / "config.json")
    with pytest.raises(ConversionError, match="norm_out/linear/bias"):
        pyramid_jax.load_dit(str(tmp_path))


def test_pickled_bin_needs_opt_in(tmp_path):
    import torch

    tensors = load_file(str(FLUX_MODEL / "diffusion_pytorch_model.safetensors"))
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, tmp_path / "diffusion_pytorch_model.bin")
    shutil.copy(FLUX_MODEL / "config.json", tmp_path / "config.json")
    with pytest.raises(ValueError, match="allow_pickle=True"):
        pyramid_jax.load_dit(str(tmp_path))
    model = pyramid_jax.load_dit(str(tmp_path), allow_pickle=True)
    np.testing.assert_array_equal(np.asarray(model.proj_out.kernel), tensors["proj_out.weight"].T)


def _flat(model):
    return {k: np.asarray(v.get_value()) for k, v in nnx.to_flat_state(nnx.state(model))}


@pytest.mark.parametrize("dtype", [None, "bf16"])
def test_cli_converts_snapshot_and_round_trips(tmp_path, dtype):
    dst = tmp_path / "converted"
    argv = ["--src", str(SNAPSHOT), "--dst", str(dst), "--components", "dit"] + (["--dtype", dtype] if dtype else [])
    assert convert_torch_weights.main(argv) == 0
    folder = str(dst / "diffusion_transformer_384p")
    source = _flat(pyramid_jax.load_dit(str(SNAPSHOT / "diffusion_transformer_384p")))
    if dtype is None:
        assert _flat(pyramid_jax.load_dit(folder)).keys() == source.keys()
        for k, v in _flat(pyramid_jax.load_dit(folder)).items():
            np.testing.assert_array_equal(v, source[k])
    else:
        converted = _flat(pyramid_jax.load_dit(folder, dtype=ml_dtypes.bfloat16))
        for k, v in converted.items():
            assert v.dtype == ml_dtypes.bfloat16
            np.testing.assert_array_equal(v, source[k].astype(ml_dtypes.bfloat16))
    with pytest.raises(SystemExit, match="already exists; pass --overwrite"):
        convert_torch_weights.main(argv)


def test_failed_conversion_leaves_nothing_behind(tmp_path):
    src = tmp_path / "snapshot"
    shutil.copytree(SNAPSHOT / "diffusion_transformer_384p", src / "diffusion_transformer_384p")
    weights = src / "diffusion_transformer_384p" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(str(weights))
    tensors["context_embedder.weight"] = tensors["context_embedder.weight"][:, :5]
    save_file(tensors, str(weights))
    with pytest.raises(SystemExit, match="context_embedder.weight"):
        convert_torch_weights.main(["--src", str(src), "--dst", str(tmp_path / "out"), "--components", "dit"])
    assert sorted(os.listdir(tmp_path)) == ["snapshot"]


def test_cli_rejects_unknown_component_and_missing_folder(tmp_path):
    with pytest.raises(SystemExit, match="unknown component"):
        convert_torch_weights.main(["--src", str(SNAPSHOT), "--dst", str(tmp_path / "o"), "--components", "ditt"])
    with pytest.raises(SystemExit, match="source snapshot folder .*missing does not exist"):
        convert_torch_weights.main(["--src", str(tmp_path / "missing"), "--dst", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="diffusion_transformer_768p"):
        convert_torch_weights.main(["--src", str(SNAPSHOT), "--dst", str(tmp_path / "o"), "--components", "dit",
                                    "--variant", "diffusion_transformer_768p"])


def test_sharded_restore_from_converted_folder(tmp_path):
    convert_torch_weights.main(["--src", str(SNAPSHOT), "--dst", str(tmp_path / "c"), "--components", "dit"])
    mesh = pyramid_jax.make_mesh(data=2, fsdp=2, tensor=2)
    model = pyramid_jax.load_dit(str(tmp_path / "c" / "diffusion_transformer_384p"), mesh=mesh)
    kernel = model.transformer_blocks[0].ff.proj_in.kernel.get_value()
    assert kernel.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
