"""`Snapshot`: the folder layout of a Pyramid Flow snapshot (pipeline_spec.md §0), the released torch one or one
written by `convert_torch_weights.py` (each model folder then holds config.json + an Orbax checkpoint).

    <snapshot>/diffusion_transformer_{384p,768p,image}/   DiT variants (dit/families.py lists the released ones)
    <snapshot>/causal_video_vae/                           the VAE
    <snapshot>/tokenizer{,_2,_3}/ text_encoder{,_2,_3}/    the family's text encoders (dit/families.py)

Every folder name of the layout is spelled here; everything else asks a `Snapshot`, which names the missing
folder or file in its errors.
"""

from __future__ import annotations

import os

from pyramid_jax.dit.families import FAMILIES, Family, get_family
from pyramid_jax.io import weights

DIT_PREFIX = "diffusion_transformer_"
VAE_FOLDER = "causal_video_vae"
TOKENIZER, TEXT_ENCODER = "tokenizer", "text_encoder"
# Every text suffix of any family; those a family does not use are optional (pyramid_flux has no `_3` folders).
TEXT_SUFFIXES = tuple(dict.fromkeys(s for f in FAMILIES.values() for s in f.text.suffixes))


def resolve_snapshot(path: str) -> str:
    """The local folder of snapshot `path`: the one place a snapshot name becomes a folder."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"snapshot folder {path} does not exist")
    return path


class Snapshot:
    """A snapshot folder (`path` a folder or a `Snapshot`); its paths are checked when asked for."""

    def __init__(self, path: str | os.PathLike | Snapshot):
        self.path = path.path if isinstance(path, Snapshot) else resolve_snapshot(os.fspath(path))

    def __repr__(self) -> str:
        return f"Snapshot({self.path!r})"

    def folder(self, name: str, needed_by: str = "") -> str:
        """The subfolder `name`, which must exist."""
        path = os.path.join(self.path, name)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"snapshot {self.path} has no {name}/ folder" +
                                    (f", which {needed_by} needs" if needed_by else ""))
        return path

    # -- DiT --------------------------------------------------------------------------------------------------------

    @property
    def variants(self) -> list[str]:
        """The DiT folders present (`diffusion_transformer_*` with a config.json)."""
        return sorted(d for d in os.listdir(self.path) if d.startswith(DIT_PREFIX)
                      and os.path.isfile(os.path.join(self.path, d, weights.CONFIG_FILE)))

    def dit(self, variant: str) -> str:
        """The DiT folder `variant` (e.g. `diffusion_transformer_384p`)."""
        path = os.path.join(self.path, variant)
        if not os.path.isfile(os.path.join(path, weights.CONFIG_FILE)):
            raise FileNotFoundError(f"snapshot {self.path} has no DiT variant {variant!r} (no {variant}/"
                                    f"{weights.CONFIG_FILE}); it has {self.variants or f'no {DIT_PREFIX}* folder'}")
        return path

    # -- VAE and text encoders --------------------------------------------------------------------------------------

    @property
    def vae(self) -> str:
        return self.folder(VAE_FOLDER)

    def text_folders(self, family: str | Family) -> tuple[list[str], list[str]]:
        """(tokenizer folders, text encoder folders) of `family`, CLIPs first then T5, all checked to exist."""
        family = get_family(family) if isinstance(family, str) else family
        paths = [self.folder(name, family.name) for name in text_folder_names(family)]
        return paths[0::2], paths[1::2]


def text_folder_names(family: Family) -> list[str]:
    """`tokenizer{s}`, `text_encoder{s}` for each of the family's text suffixes s, in order."""
    return [kind + s for s in family.text.suffixes for kind in (TOKENIZER, TEXT_ENCODER)]
