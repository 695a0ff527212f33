"""Strict configs: unknown fields, load-time defaults, validation, presets."""

import json

import pytest

from pyramid_jax.config import ConfigError
from pyramid_jax.dit.config import FluxConfig, MMDiTConfig, dit_config_to_dict
from pyramid_jax.dit.families import dit_config_from_dict
from pyramid_jax.presets import load_preset

from conftest import FIXTURES


def test_unknown_field_is_named():
    with pytest.raises(ConfigError, match=r"\['num_blocks'\]"):
        FluxConfig.from_dict({"num_blocks": 3})


def test_documented_reference_only_fields_are_accepted():
    config = FluxConfig.from_dict({"use_flash_attn": True, "gradient_checkpointing_ratio": 0.75,
                                   "interp_condition_pos": False}, num_layers=2)
    assert config.num_layers == 2


def test_pipeline_load_values_fill_missing_fields_only():
    snapshot = FIXTURES / "snapshots" / "sd3_tiny"
    released = json.loads((snapshot / "diffusion_transformer_384p" / "config.json").read_text())
    config = dit_config_from_dict(released)
    assert isinstance(config, MMDiTConfig)
    assert (config.add_temp_pos_embed, config.temp_pos_embed_type, config.interp_condition_pos) == (True, "rope", True)
    fixture = json.loads((FIXTURES / "dit_flux" / "model" / "config.json").read_text())
    assert dit_config_from_dict(fixture).axes_dims_rope == (4, 6, 6)  # the folder's own value wins


def test_round_trip_and_overrides():
    config = dit_config_from_dict(json.loads((FIXTURES / "dit_flux" / "model" / "config.json").read_text()))
    assert dit_config_from_dict(dit_config_to_dict(config)) == config
    assert dit_config_from_dict(dit_config_to_dict(config), use_temporal_causal=False).use_temporal_causal is False


@pytest.mark.parametrize("values, message", [
    ({"axes_dims_rope": [16, 24, 16]}, "sum to attention_head_dim"),
    ({"patch_size": 2}, "patch_size must be 1"),
    ({"num_single_layers": 0}, "num_single_layers must be at least 1, got 0"),
    ({"attention_backend": "magic"}, "unknown attention_backend"),
])
def test_invalid_values(values, message):
    with pytest.raises(ConfigError, match=message):
        FluxConfig.from_dict(values)


def test_unknown_class_name():
    with pytest.raises(ConfigError, match="_class_name"):
        dit_config_from_dict({"_class_name": "UNet2DModel"})


@pytest.mark.parametrize("name, family, inner_dim", [
    ("miniflux_384p", "pyramid_flux", 1920), ("miniflux_768p", "pyramid_flux", 1920),
    ("miniflux_image", "pyramid_flux", 1920), ("sd3_384p", "pyramid_mmdit", 1536), ("sd3_768p", "pyramid_mmdit", 1536),
])
def test_presets(name, family, inner_dim):
    preset = load_preset(name)
    assert preset.family == family and preset.variant.startswith("diffusion_transformer_")
    assert preset.dit.inner_dim == inner_dim


def test_unknown_preset():
    with pytest.raises(FileNotFoundError, match="miniflux_384p"):
        load_preset("miniflux_1080p")
