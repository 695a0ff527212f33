"""SD3 MM-DiT 768p: 1280x768 video, up to 10 s."""

from pyramid_jax.dit.released import sd3_dit
from pyramid_jax.presets import ModelPreset


def get_config() -> ModelPreset:
    return ModelPreset(model_name="pyramid_mmdit", variant="diffusion_transformer_768p",
                       dit=sd3_dit(), width=1280, height=768, max_temp=31)
