"""Converting a whole torch snapshot (the released layout, `pyramid_jax.snapshot`) component by component."""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Callable

import ml_dtypes
import numpy as np

from pyramid_jax.dit.families import FAMILIES, variant_folders
from pyramid_jax.dit.load import DIT
from pyramid_jax.io.atomic import atomic_directory
from pyramid_jax.io.model_kind import ModelKind
from pyramid_jax.snapshot import (HUB_ID, SAMPLING_FILE, TEXT_ENCODER, TEXT_SUFFIXES, TOKENIZER, VAE_FOLDER,
                                  Snapshot)
from pyramid_jax.text.load import TEXT
from pyramid_jax.vae.load import VAE

DTYPES = {"fp32": np.float32, "bf16": ml_dtypes.bfloat16}
DIT_VARIANTS = variant_folders()


@dataclasses.dataclass(frozen=True)
class Component:
    """The model folders `folders(variant)` of one component, each converted by `kind`, plus folders copied as is."""

    folders: Callable[[str], tuple[str, ...]]
    kind: ModelKind
    copied: tuple[str, ...] = ()  # subfolders copied verbatim (e.g. tokenizers)
    optional: tuple[str, ...] = ()  # subfolders above that a snapshot may lack (skipped when absent)


# Text suffixes some family lacks (pyramid_flux has no `_3` folders); each folder's config.json says which model it is.
_OPTIONAL = [s for s in TEXT_SUFFIXES if any(s not in f.text.suffixes for f in FAMILIES.values())]
COMPONENTS: dict[str, Component] = {
    "dit": Component(folders=lambda variant: (variant,), kind=DIT),
    "vae": Component(folders=lambda variant: (VAE_FOLDER,), kind=VAE),
    "text": Component(folders=lambda variant: tuple(TEXT_ENCODER + s for s in TEXT_SUFFIXES), kind=TEXT,
                      copied=tuple(TOKENIZER + s for s in TEXT_SUFFIXES),
                      optional=tuple(kind + s for s in _OPTIONAL for kind in (TEXT_ENCODER, TOKENIZER))),
}


def convert_snapshot(src: str | Snapshot, dst: str, components=None, variant: str = DIT_VARIANTS[0],
                     dtype: str | None = None, allow_pickle: bool = False, overwrite: bool = False, progress=iter,
                     allow_nonfinite: bool = False) -> list[str]:
    """Converts `components` of the snapshot `src` into `dst`, atomically; returns the folders written.

    With `overwrite`, an existing `dst` keeps every folder that is not written now (so `components=["dit"]`
    replaces only the DiT). A NaN or infinite weight is an error unless `allow_nonfinite`.
    """
    if not isinstance(src, Snapshot) and not os.path.isdir(src) and not HUB_ID.fullmatch(src):
        raise FileNotFoundError(f"source snapshot folder {src} does not exist")
    src = Snapshot(src)
    if os.path.exists(dst) and not overwrite:
        raise FileExistsError(f"destination {dst} already exists; pass --overwrite (overwrite=True) to replace the "
                              "converted components, or choose another destination")
    components = list(COMPONENTS) if components is None else list(components)
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown component(s) {unknown}; available: {sorted(COMPONENTS)}")
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}")
    if variant not in DIT_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {DIT_VARIANTS}")
    jobs = []
    for name in components:
        comp = COMPONENTS[name]
        needed = [f for f in comp.folders(variant) + comp.copied if f not in comp.optional]
        for folder in needed:
            src.folder(folder, f"component {name!r}")
        present = [f for f in comp.folders(variant) + comp.copied if os.path.isdir(os.path.join(src.path, f))]
        jobs.append((comp, [f for f in comp.folders(variant) if f in present],
                     [f for f in comp.copied if f in present]))
    written = []
    with atomic_directory(dst, overwrite=overwrite) as tmp:
        replaced = {f for comp, converted, copied in jobs for f in converted + copied}
        for name in sorted(os.listdir(dst)) if os.path.isdir(dst) else []:
            if name not in replaced:  # kept from the existing destination: hard links, so no copy of the weights
                _link_tree(os.path.join(dst, name), os.path.join(tmp, name))
        for comp, converted, copied in jobs:
            for folder in converted:
                comp.kind.convert(os.path.join(src.path, folder), os.path.join(tmp, folder),
                                  None if dtype is None else DTYPES[dtype], allow_pickle, progress, allow_nonfinite)
                if os.path.isfile(os.path.join(src.path, folder, SAMPLING_FILE)):  # the DiT's native size, defaults
                    shutil.copy2(os.path.join(src.path, folder, SAMPLING_FILE), os.path.join(tmp, folder))
                written.append(folder)
            for folder in copied:
                shutil.copytree(os.path.join(src.path, folder), os.path.join(tmp, folder))
                written.append(folder)
    return written


def _link_tree(src: str, dst: str) -> None:
    """`src` recreated at `dst` with hard links (a copy where linking is not possible)."""
    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    if os.path.isdir(src):
        shutil.copytree(src, dst, copy_function=link)
    else:
        link(src, dst)
