"""Named model presets: plain-Python files in `configs/` whose `get_config()` returns a `ModelPreset`."""

from __future__ import annotations

import dataclasses
import importlib.util
import os

from pyramid_jax.config import FrozenConfig

CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


@dataclasses.dataclass(frozen=True)
class ModelPreset:
    """A released model variant: which DiT folder of a snapshot, its architecture and its native video size."""

    model_name: str  # "pyramid_flux" (miniFLUX) or "pyramid_mmdit" (SD3)
    variant: str  # DiT folder in the snapshot, e.g. "diffusion_transformer_384p"
    dit: FrozenConfig
    width: int
    height: int
    max_temp: int  # latent frames the variant was trained for (1 = image model)


def load_preset(name_or_path: str) -> ModelPreset:
    """Loads `configs/<name>.py` (or any path to such a file) and returns its `get_config()`."""
    path = name_or_path if name_or_path.endswith(".py") else os.path.join(CONFIGS_DIR, f"{name_or_path}.py")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no preset {name_or_path!r}; available: {preset_names()}")
    spec = importlib.util.spec_from_file_location(f"pyramid_jax_preset_{os.path.basename(path)[:-3]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def preset_names() -> list[str]:
    return sorted(f[:-3] for f in os.listdir(CONFIGS_DIR) if f.endswith(".py") and not f.startswith("_"))


def find_preset(model_name: str, variant: str) -> ModelPreset | None:
    """The preset of a snapshot's DiT folder `variant` for `model_name`, or None for an unknown (custom) folder."""
    for name in preset_names():
        preset = load_preset(name)
        if preset.model_name == model_name and preset.variant == variant:
            return preset
    return None
