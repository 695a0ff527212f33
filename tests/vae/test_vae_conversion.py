"""VAE conversion: release-size shapes without memory, hard failures, .bin and .safetensors, converted folders."""

import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file

from conftest import FIXTURES
from pyramid_jax.config import ConfigError
from pyramid_jax.convert.engine import ConversionError, plan
from pyramid_jax.convert.sources import open_torch_checkpoint
from pyramid_jax.convert.vae_table import VAE_TABLE
from pyramid_jax.io.weights import flat_shapes
from pyramid_jax.snapshot_conversion import convert_snapshot
from pyramid_jax.vae.load import abstract_vae, load_vae, read_vae_config, vae_config_from_dict
from vae_testing import VAE_DIR, tiny_vae

MODEL = VAE_DIR / "model"
WEIGHTS = MODEL / "diffusion_pytorch_model.safetensors"


def test_release_key_listing_converts_to_exact_shapes():
    release = json.loads((FIXTURES / "release_shapes" / "causal_video_vae.json").read_text())
    config = vae_config_from_dict({**release["released_config"], **release["pipeline_load_overrides"]})
    _, abstract = abstract_vae(config)  # eval_shape: nothing allocated
    expected = flat_shapes(abstract)
    steps = plan(VAE_TABLE, {k: tuple(s) for k, s, _, _ in release["state_dict"]}, expected)
    assert len(steps) == release["num_tensors"] == len(expected) == 260
    assert sum(int(np.prod(s)) for s in expected.values()) == release["num_param_elements"] == 335_402_067
    by_key = {s.key: s.path for s in steps}
    assert by_key["decoder.up_blocks.0.upsamplers.0.conv.conv.weight"] == ("decoder", "up_blocks", 0,
                                                                           "spatial_upsample", "kernel")
    assert expected[("decoder", "up_blocks", 0, "spatial_upsample", "kernel")] == (3, 3, 3, 512, 2048)
    assert expected[("encoder", "mid_block", "attention", "to_out", "kernel")] == (512, 512)


def test_missing_unexpected_and_misshaped_keys_are_all_reported():
    shapes = open_torch_checkpoint(str(MODEL)).shapes()
    del shapes["decoder.up_blocks.1.temporal_upsamplers.0.conv.conv.bias"]
    shapes["encoder.mid_block.attentions.0.to_extra.weight"] = (32, 32)
    shapes["encoder.conv_in.conv.weight"] = (8, 3, 1, 3, 3)
    with pytest.raises(ConversionError) as err:
        plan(VAE_TABLE, shapes, flat_shapes(abstract_vae(read_vae_config(str(MODEL)))[1]))
    text = str(err.value)
    assert "1 missing" in text and "decoder/up_blocks/1/temporal_upsample/bias" in text
    assert "1 unexpected" in text and "encoder.mid_block.attentions.0.to_extra.weight" in text
    assert "1 mis-shaped" in text and "encoder.conv_in.conv.weight: checkpoint [8, 3, 1, 3, 3]" in text


def _assert_same_params(a, b):
    flat_a, flat_b = dict(nnx.to_flat_state(nnx.state(a))), dict(nnx.to_flat_state(nnx.state(b)))
    assert flat_a.keys() == flat_b.keys()
    for path in flat_a:
        np.testing.assert_array_equal(np.asarray(flat_a[path].get_value()), np.asarray(flat_b[path].get_value()))


def test_layouts_of_loaded_weights():
    tensors, vae = load_file(str(WEIGHTS)), tiny_vae()
    np.testing.assert_array_equal(vae.decoder.conv_out.kernel[...],
                                  tensors["decoder.conv_out.conv.weight"].transpose(2, 3, 4, 1, 0))
    np.testing.assert_array_equal(vae.encoder.mid_block.attention.to_q.kernel[...],
                                  tensors["encoder.mid_block.attentions.0.to_q.weight"].T)
    np.testing.assert_array_equal(vae.encoder.conv_norm_out.scale[...], tensors["encoder.conv_norm_out.weight"])


def test_pickled_bin_needs_opt_in_and_loads_the_same(tmp_path):
    import torch

    tensors = load_file(str(WEIGHTS))
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, tmp_path / "diffusion_pytorch_model.bin")
    shutil.copy(MODEL / "config.json", tmp_path / "config.json")
    with pytest.raises(ValueError, match="allow_pickle=True"):
        load_vae(str(tmp_path))
    _assert_same_params(load_vae(str(tmp_path), allow_pickle=True), tiny_vae())


def test_snapshot_component_converts_and_reloads(tmp_path):
    written = convert_snapshot(str(FIXTURES / "snapshots" / "miniflux_tiny"), str(tmp_path / "out"),
                               components=["vae"], dtype="bf16")
    assert written == ["causal_video_vae"]
    converted = load_vae(str(tmp_path / "out" / "causal_video_vae"), dtype=jnp.bfloat16)
    assert converted.config == tiny_vae().config
    _assert_same_params(converted, load_vae(str(MODEL), dtype=jnp.bfloat16))


def test_config_is_strict():
    values = json.loads((MODEL / "config.json").read_text())
    with pytest.raises(ConfigError, match="encoder_extra"):
        vae_config_from_dict({**values, "encoder_extra": 1})
    with pytest.raises(ConfigError, match="decoder_in_channels"):
        vae_config_from_dict({**values, "decoder_in_channels": 8})
    with pytest.raises(ConfigError, match="downsample_scale"):
        vae_config_from_dict({**values, "downsample_scale": 4})
    with pytest.raises(ConfigError, match="DownEncoderBlockCausal3D"):
        vae_config_from_dict({**values, "encoder_down_block_types": ["DownEncoderBlock2D"] * 4})
    # Like the pipeline's from_pretrained(interpolate=False), loading forces the only implemented upsampler.
    assert not vae_config_from_dict({**values, "interpolate": True}).interpolate
    with pytest.raises(ConfigError, match="interpolate"):
        vae_config_from_dict(values, interpolate=True)
