"""SD3 MM-DiT 384p: 640x384 video, up to 5 s."""

from pyramid_jax.dit.released import sd3_dit
from pyramid_jax.presets import ModelPreset


def get_config() -> ModelPreset:
    return ModelPreset(model_name="pyramid_mmdit", variant="diffusion_transformer_384p",
                       dit=sd3_dit(), width=640, height=384, max_temp=16)
