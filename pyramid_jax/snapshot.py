"""`Snapshot`: the folder layout of a Pyramid Flow snapshot (pipeline_spec.md §0), the released torch one or one
written by `convert_torch_weights.py` (each model folder then holds config.json + an Orbax checkpoint).

    <snapshot>/diffusion_transformer_{384p,768p,image}/   DiT variants (dit/families.py lists the released ones)
    <snapshot>/causal_video_vae/                           the VAE
    <snapshot>/tokenizer{,_2,_3}/ text_encoder{,_2,_3}/    the family's text encoders (dit/families.py)

A snapshot is named by its folder or by a Hugging Face hub id (`rain1011/pyramid-flow-miniflux`), which resolves
through huggingface_hub's cache (`resolve_snapshot`). Every folder name of the layout is spelled here; everything
else asks a `Snapshot`, which names the missing folder or file in its errors.
"""

from __future__ import annotations

import json
import os
import re

from pyramid_jax.dit.families import FAMILIES, Family, get_family
from pyramid_jax.io import weights

DIT_PREFIX = "diffusion_transformer_"
VAE_FOLDER = "causal_video_vae"
TOKENIZER, TEXT_ENCODER = "tokenizer", "text_encoder"
# Every text suffix of any family; those a family does not use are optional (pyramid_flux has no `_3` folders).
TEXT_SUFFIXES = tuple(dict.fromkeys(s for f in FAMILIES.values() for s in f.text.suffixes))


# A Hugging Face hub repository id, `owner/name` (e.g. rain1011/pyramid-flow-miniflux).
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def resolve_snapshot(path: str) -> str:
    """The local folder of snapshot `path`: the one place a snapshot name becomes a folder. A `path` that is no folder
    but reads as a hub id (`owner/name`) is the hub repository's snapshot in huggingface_hub's cache."""
    if os.path.isdir(path):
        return path
    if HUB_ID.fullmatch(path) and not os.path.exists(path):
        return hub_snapshot(path)
    raise FileNotFoundError(f"snapshot folder {path} does not exist")


def hub_snapshot(repo_id: str) -> str:
    """The folder of hub repository `repo_id` in huggingface_hub's cache ($HF_HUB_CACHE, default
    ~/.cache/huggingface/hub): downloaded, or brought up to date, when the hub can be reached; else the cached copy
    (offline, and with HF_HUB_OFFLINE=1, the hub is not asked)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        return snapshot_download(repo_id)
    except (OSError, HFValidationError) as e:  # not cached and not downloadable: offline, unknown repo, gated, ...
        raise FileNotFoundError(
            f"snapshot {repo_id} is not a folder, and as a hub id it is neither in huggingface_hub's cache "
            f"({constants.HF_HUB_CACHE}) nor downloadable ({type(e).__name__}: {e})") from None


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


# In a DiT folder, next to config.json: the variant's native size and max temp (`width`, `height`, `max_temp`, which
# override the released variant's), and optionally sample.py's defaults for it. The embedded snapshots have one.
SAMPLING_FILE = "sampling.json"
SAMPLING_FIELDS = {"width": int, "height": int, "max_temp": int, "temp": int, "steps": list, "video_steps": list,
                   "guidance_scale": float, "video_guidance_scale": float, "negative_prompt": str, "prompt": list}


def sampling_defaults(dit_folder: str) -> dict:
    """The `sampling.json` of a DiT folder as a dict (empty when there is none), each field checked."""
    path = os.path.join(dit_folder, SAMPLING_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        try:
            values = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
    for name, value in values.items() if isinstance(values, dict) else [("", values)]:
        kind = SAMPLING_FIELDS.get(name)
        if kind is None:
            raise ValueError(f"{path}: unknown field {name!r}; known: {sorted(SAMPLING_FIELDS)}")
        if not isinstance(value, (int, float) if kind is float else kind) or isinstance(value, bool):
            raise ValueError(f"{path}: {name} must be {kind.__name__}; got {value!r}")
    return values


def text_folder_names(family: Family) -> list[str]:
    """`tokenizer{s}`, `text_encoder{s}` for each of the family's text suffixes s, in order."""
    return [kind + s for s in family.text.suffixes for kind in (TOKENIZER, TEXT_ENCODER)]
