"""miniFLUX text-to-image: 1280x768 (also 1024x1024 and 768x1280)."""

from pyramid_jax.dit.released import miniflux_dit
from pyramid_jax.presets import ModelPreset


def get_config() -> ModelPreset:
    return ModelPreset(model_name="pyramid_flux", variant="diffusion_transformer_image",
                       dit=miniflux_dit(), width=1280, height=768, max_temp=1)
