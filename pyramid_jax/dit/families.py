"""The two Pyramid Flow model families, and every fact about each, in one place.

A family is named by its DiT: `pyramid_flux` (miniFLUX, `PyramidFluxTransformer`) or `pyramid_mmdit` (SD3,
`PyramidDiffusionMMDiT`). It fixes the DiT config class, module and torch conversion table, the released DiT
config.json, which text encoders a snapshot holds, the latent normalisation, and the released DiT variants. Every
other module asks `get_family` (by any of a family's names) or `family_of_config` (by a DiT config).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from pyramid_jax.config import ConfigError, FrozenConfig
from pyramid_jax.convert.dit_tables import FLUX_TABLE, MMDIT_TABLE
from pyramid_jax.convert.engine import ConversionTable
from pyramid_jax.dit.config import FluxConfig, MMDiTConfig
from pyramid_jax.dit.pyramid_flux import PyramidFluxTransformer
from pyramid_jax.dit.pyramid_mmdit import PyramidDiffusionMMDiT


@dataclasses.dataclass(frozen=True)
class TextLayout:
    """The text encoders of a snapshot (pipeline_spec.md §1): `tokenizer{s}/` and `text_encoder{s}/` per suffix s."""

    clips: tuple[str, ...]  # CLIP suffixes, pooled vectors concatenated in this order
    projected: bool  # pooled = text_embeds (CLIPTextModelWithProjection) instead of pooler_output
    t5: str

    @property
    def suffixes(self) -> tuple[str, ...]:
        return (*self.clips, self.t5)


@dataclasses.dataclass(frozen=True)
class LatentScaling:
    """The DiT sees `(z - shift) * scale` of VAE latents (vae_spec.md §4.5): latent frame 0 (the image latent) with
    the image constants, later frames with the video ones. The VAE config's `scaling_factor` is not used."""

    image_shift: float
    image_scale: float
    video_shift: float = -0.2343  # shared by both families
    video_scale: float = 1 / 3.0986

    def normalize(self, z: jax.Array) -> jax.Array:
        """VAE latents `[B, T, H, W, C]` -> DiT latents."""
        return _per_frame(z, lambda x: (x - self.image_shift) * self.image_scale,
                          lambda x: (x - self.video_shift) * self.video_scale)

    def denormalize(self, z: jax.Array) -> jax.Array:
        """DiT latents `[B, T, H, W, C]` -> VAE latents."""
        return _per_frame(z, lambda x: x / self.image_scale + self.image_shift,
                          lambda x: x / self.video_scale + self.video_shift)


def _per_frame(z: jax.Array, image, video) -> jax.Array:
    return jnp.concatenate([image(z[:, :1]), video(z[:, 1:])], axis=1)


@dataclasses.dataclass(frozen=True)
class Variant:
    """A released DiT folder of a snapshot and the video it was trained for."""

    folder: str  # e.g. "diffusion_transformer_384p"
    width: int  # native size, pixels
    height: int
    max_temp: int  # latent frames the variant was trained for (1 = an image model)


@dataclasses.dataclass(frozen=True)
class Family:
    """One model family: its DiT, text encoders, latent scaling and released variants."""

    name: str  # the family everywhere in this project (the reference's `model_name`), e.g. "pyramid_flux"
    short_name: str  # the release's name, e.g. "miniflux" (hub repo `rain1011/pyramid-flow-miniflux`, presets)
    config_class: type[FrozenConfig]  # its `CLASS_NAME` is the DiT config.json's `_class_name`
    module_class: Callable
    table: ConversionTable  # torch DiT -> NNX
    # What the reference's `build_pyramid_dit` passes to `from_pretrained` on top of config.json (dit_spec.md §1):
    # they fill the fields a released config.json lacks; values a config.json carries are kept.
    load_defaults: dict
    released_config: dict  # the released DiT config.json (one architecture for all variants)
    text: TextLayout
    latents: LatentScaling
    variants: tuple[Variant, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the family is known by."""
        return self.name, self.short_name, self.config_class.CLASS_NAME

    def released_dit(self) -> FrozenConfig:
        """The released DiT config, with the pipeline's load-time values filled in."""
        return dit_config_from_dict(self.released_config)

    def variant(self, folder: str) -> Variant | None:
        """The released variant in DiT folder `folder`, or None for a custom folder."""
        return next((v for v in self.variants if v.folder == folder), None)


_REFERENCE_ONLY = dict(use_flash_attn=False, use_gradient_checkpointing=False)

PYRAMID_FLUX = Family(
    name="pyramid_flux", short_name="miniflux", config_class=FluxConfig, module_class=PyramidFluxTransformer,
    table=FLUX_TABLE, load_defaults=dict(use_temporal_causal=True, axes_dims_rope=(16, 24, 24)),
    # rain1011/pyramid-flow-miniflux diffusion_transformer_*/config.json (dit_spec.md §1)
    released_config=dict(
        _class_name="PyramidFluxTransformer", attention_head_dim=64, axes_dims_rope=[16, 24, 24], in_channels=64,
        interp_condition_pos=True, joint_attention_dim=4096, num_attention_heads=30, num_layers=8,
        num_single_layers=16, patch_size=1, pooled_projection_dim=768, use_temporal_causal=True, **_REFERENCE_ONLY),
    text=TextLayout(clips=("",), projected=False, t5="_2"),  # CLIP-L pooler_output + T5
    latents=LatentScaling(image_shift=-0.04, image_scale=1 / 1.8726),
    variants=(Variant("diffusion_transformer_384p", 640, 384, 16),  # 5 s
              Variant("diffusion_transformer_768p", 1280, 768, 31),  # 10 s
              Variant("diffusion_transformer_image", 1280, 768, 1)),  # also 1024x1024 and 768x1280
)

PYRAMID_MMDIT = Family(
    name="pyramid_mmdit", short_name="sd3", config_class=MMDiTConfig, module_class=PyramidDiffusionMMDiT,
    table=MMDIT_TABLE, load_defaults=dict(use_temporal_causal=True, add_temp_pos_embed=True,
                                          temp_pos_embed_type="rope", interp_condition_pos=True),
    # rain1011/pyramid-flow-sd3 diffusion_transformer_*/config.json
    released_config=dict(
        _class_name="PyramidDiffusionMMDiT", attention_head_dim=64, caption_projection_dim=1536, in_channels=16,
        joint_attention_dim=4096, max_num_frames=200, num_attention_heads=24, num_layers=24, patch_size=2,
        pooled_projection_dim=2048, pos_embed_max_size=192, pos_embed_type="sincos", qk_norm="rms_norm",
        sample_size=128, use_temporal_causal=True, **_REFERENCE_ONLY),
    text=TextLayout(clips=("", "_2"), projected=True, t5="_3"),  # CLIP-L and CLIP-G text_embeds + T5
    latents=LatentScaling(image_shift=0.1490, image_scale=1 / 1.8415),
    variants=(Variant("diffusion_transformer_384p", 640, 384, 16),
              Variant("diffusion_transformer_768p", 1280, 768, 31)),
)

FAMILIES: dict[str, Family] = {f.name: f for f in (PYRAMID_FLUX, PYRAMID_MMDIT)}
_BY_NAME: dict[str, Family] = {n: f for f in FAMILIES.values() for n in f.names}
_BY_CLASS_NAME: dict[str, Family] = {f.config_class.CLASS_NAME: f for f in FAMILIES.values()}


def get_family(name: str) -> Family:
    """The family called `name` (`pyramid_flux`, `miniflux` or `PyramidFluxTransformer`; likewise for SD3)."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown model family {name!r}; choose one of {sorted(FAMILIES)} (or "
                         f"{sorted(set(_BY_NAME) - set(FAMILIES))})")
    return _BY_NAME[name]


def family_of_config(config: FrozenConfig) -> Family:
    """The family of a DiT config."""
    for family in FAMILIES.values():
        if type(config) is family.config_class:
            return family
    raise NotImplementedError(f"{type(config).__name__} is not a DiT family config; available: "
                              f"{sorted(_BY_CLASS_NAME)}")


def dit_config_from_dict(values: dict, **overrides) -> FrozenConfig:
    """A DiT config.json's effective config: the family from `_class_name`, the pipeline's load-time values filled
    in, then `overrides`."""
    class_name = values.get("_class_name")
    if class_name not in _BY_CLASS_NAME:
        raise ConfigError(f"config `_class_name` is {class_name!r}; expected one of {sorted(_BY_CLASS_NAME)}")
    family = _BY_CLASS_NAME[class_name]
    return family.config_class.from_dict({**family.load_defaults, **values}, **overrides)


def variant_folders() -> tuple[str, ...]:
    """Every released DiT folder name, in release order."""
    return tuple(dict.fromkeys(v.folder for f in FAMILIES.values() for v in f.variants))


def normalize_latents(z: jax.Array, family: str) -> jax.Array:
    """VAE latents `[B, T, H, W, C]` -> DiT latents of `family` (e.g. "pyramid_flux")."""
    return get_family(family).latents.normalize(z)


def denormalize_latents(z: jax.Array, family: str) -> jax.Array:
    """Inverse of `normalize_latents`: DiT latents `[B, T, H, W, C]` -> VAE latents."""
    return get_family(family).latents.denormalize(z)
