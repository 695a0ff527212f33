"""Named model presets: one per released DiT variant of each family (`dit/families.py`), e.g. `miniflux_384p`."""

from __future__ import annotations

import dataclasses

from pyramid_jax.config import FrozenConfig
from pyramid_jax.dit.families import FAMILIES, Family, Variant, get_family
from pyramid_jax.snapshot import DIT_PREFIX


@dataclasses.dataclass(frozen=True)
class ModelPreset:
    """A released model variant: which DiT folder of a snapshot, its architecture and its native video size."""

    family: str  # "pyramid_flux" (miniFLUX) or "pyramid_mmdit" (SD3)
    variant: str  # DiT folder in the snapshot, e.g. "diffusion_transformer_384p"
    dit: FrozenConfig
    width: int
    height: int
    max_temp: int  # latent frames the variant was trained for (1 = image model)


def _preset(family: Family, variant: Variant) -> ModelPreset:
    return ModelPreset(family.name, variant.folder, family.released_dit(), variant.width, variant.height,
                       variant.max_temp)


def _presets() -> dict[str, ModelPreset]:
    return {f"{family.short_name}_{v.folder.removeprefix(DIT_PREFIX)}": _preset(family, v)
            for family in FAMILIES.values() for v in family.variants}


def load_preset(name: str) -> ModelPreset:
    """The preset `<family>_<variant>`, e.g. `miniflux_384p` or `sd3_768p`."""
    presets = _presets()
    if name not in presets:
        raise FileNotFoundError(f"no preset {name!r}; available: {sorted(presets)}")
    return presets[name]


def preset_names() -> list[str]:
    return sorted(_presets())


def find_preset(family: str, variant: str) -> ModelPreset | None:
    """The preset of a snapshot's DiT folder `variant` for `family`, or None for an unknown (custom) folder."""
    spec = get_family(family)
    found = spec.variant(variant)
    return None if found is None else _preset(spec, found)
