"""Config of the causal video VAE, as `CausalVideoVAE` is built from a released `config.json` (vae_spec.md §1)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from pyramid_jax.config import ConfigError, FrozenConfig

DOWN_BLOCK_TYPE = "DownEncoderBlockCausal3D"
UP_BLOCK_TYPE = "UpDecoderBlockCausal3D"


@dataclasses.dataclass(frozen=True)
class VAEConfig(FrozenConfig):
    """`CausalVideoVAE`: causal 3-D conv encoder/decoder; frame 0 is coded alone, then 8 frames per latent frame.

    Encoder lists are indexed from the input down; decoder lists are indexed in up-block order (block 0 is the
    lowest resolution), except `decoder_block_out_channels`, which is given low-to-high and used reversed.
    """

    # Stored by the reference but never read: the encoder always emits 2z moments and post_quant_conv always
    # exists; `scaling_factor` is unused (the pipeline has its own latent constants, see `latents.py`);
    # `sample_size` is only a tile-size default that every encode/decode call overrides; dropout is inactive in
    # this inference port.
    IGNORED_FIELDS: ClassVar[frozenset[str]] = frozenset({
        "encoder_double_z", "add_post_quant_conv", "scaling_factor", "sample_size", "encoder_type", "decoder_type",
        "encoder_block_dropout", "decoder_block_dropout"})
    CLASS_NAME: ClassVar[str] = "CausalVideoVAE"

    encoder_in_channels: int = 3
    encoder_out_channels: int = 4
    encoder_layers_per_block: tuple[int, ...] = (2, 2, 2, 2)
    encoder_down_block_types: tuple[str, ...] = (DOWN_BLOCK_TYPE,) * 4
    encoder_block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    encoder_spatial_down_sample: tuple[bool, ...] = (True, True, True, False)
    encoder_temporal_down_sample: tuple[bool, ...] = (True, True, True, False)
    encoder_act_fn: str = "silu"
    encoder_norm_num_groups: int = 32
    decoder_in_channels: int = 4
    decoder_out_channels: int = 3
    decoder_layers_per_block: tuple[int, ...] = (3, 3, 3, 3)
    decoder_up_block_types: tuple[str, ...] = (UP_BLOCK_TYPE,) * 4
    decoder_block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    decoder_spatial_up_sample: tuple[bool, ...] = (True, True, True, False)
    decoder_temporal_up_sample: tuple[bool, ...] = (True, True, True, False)
    decoder_act_fn: str = "silu"
    decoder_norm_num_groups: int = 32
    interpolate: bool = False
    downsample_scale: int = 8

    def __post_init__(self):
        name = type(self).__name__
        if self.interpolate:
            raise ConfigError(f"{name}.interpolate must be False: the reference implements only the learned "
                              "depth-to-space upsampling")
        for side, types, kind, lists in (
                ("encoder", self.encoder_down_block_types, DOWN_BLOCK_TYPE,
                 (self.encoder_layers_per_block, self.encoder_block_out_channels, self.encoder_spatial_down_sample,
                  self.encoder_temporal_down_sample)),
                ("decoder", self.decoder_up_block_types, UP_BLOCK_TYPE,
                 (self.decoder_layers_per_block, self.decoder_block_out_channels, self.decoder_spatial_up_sample,
                  self.decoder_temporal_up_sample))):
            if any(t != kind for t in types):
                raise ConfigError(f"{name}: every {side} block must be {kind!r}, got {list(types)}")
            if any(len(values) != len(types) for values in lists):
                raise ConfigError(f"{name}: the per-block {side} lists must all have {len(types)} entries")
            act = getattr(self, f"{side}_act_fn")
            if act != "silu":
                raise ConfigError(f"{name}.{side}_act_fn must be 'silu', got {act!r}")
            groups = getattr(self, f"{side}_norm_num_groups")
            if any(c % groups for c in lists[1]):
                raise ConfigError(f"{name}: {side}_norm_num_groups {groups} must divide every block width {lists[1]}")
        if self.decoder_in_channels != self.encoder_out_channels:
            raise ConfigError(f"{name}: decoder_in_channels {self.decoder_in_channels} must equal "
                              f"encoder_out_channels {self.encoder_out_channels}")
        factors = {"encoder spatial": self.encoder_spatial_down_sample,
                   "encoder temporal": self.encoder_temporal_down_sample,
                   "decoder spatial": self.decoder_spatial_up_sample,
                   "decoder temporal": self.decoder_temporal_up_sample}
        for what, flags in factors.items():
            if 2 ** sum(flags) != self.downsample_scale:
                raise ConfigError(f"{name}: the {what} factor 2^{sum(flags)} must equal downsample_scale "
                                  f"{self.downsample_scale} (it is the tiling and chunking modulus)")

    @property
    def latent_channels(self) -> int:
        return self.encoder_out_channels
