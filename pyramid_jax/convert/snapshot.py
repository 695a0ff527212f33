"""Converting a whole torch snapshot folder (the released layout, pipeline_spec.md §0) component by component."""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Callable

import ml_dtypes
import numpy as np

from pyramid_jax.dit.load import DIT
from pyramid_jax.io.atomic import atomic_directory
from pyramid_jax.io.model_kind import ModelKind
from pyramid_jax.text.load import TEXT
from pyramid_jax.vae.load import VAE

DTYPES = {"fp32": np.float32, "bf16": ml_dtypes.bfloat16}
DIT_VARIANTS = ("diffusion_transformer_384p", "diffusion_transformer_768p", "diffusion_transformer_image")


@dataclasses.dataclass(frozen=True)
class Component:
    """The model folders `folders(variant)` of one component, each converted by `kind`, plus folders copied as is."""

    folders: Callable[[str], tuple[str, ...]]
    kind: ModelKind
    copied: tuple[str, ...] = ()  # subfolders copied verbatim (e.g. tokenizers)
    optional: tuple[str, ...] = ()  # subfolders above that a snapshot may lack (skipped when absent)


COMPONENTS: dict[str, Component] = {
    "dit": Component(folders=lambda variant: (variant,), kind=DIT),
    "vae": Component(folders=lambda variant: ("causal_video_vae",), kind=VAE),
    # pyramid_flux: CLIP-L + T5; pyramid_mmdit: CLIP-L, CLIP-G + T5 (the _3 folders). Each folder's config.json
    # says which model it holds.
    "text": Component(folders=lambda variant: ("text_encoder", "text_encoder_2", "text_encoder_3"), kind=TEXT,
                      copied=("tokenizer", "tokenizer_2", "tokenizer_3"), optional=("text_encoder_3", "tokenizer_3")),
}


def convert_snapshot(src: str, dst: str, components=None, variant: str = DIT_VARIANTS[0], dtype: str | None = None,
                     allow_pickle: bool = False, overwrite: bool = False, progress=iter,
                     allow_nonfinite: bool = False) -> list[str]:
    """Converts `components` of the snapshot `src` into `dst`, atomically; returns the folders written.

    With `overwrite`, an existing `dst` keeps every folder that is not written now (so `components=["dit"]`
    replaces only the DiT). A NaN or infinite weight is an error unless `allow_nonfinite`.
    """
    if not os.path.isdir(src):
        raise FileNotFoundError(f"source snapshot folder {src} does not exist")
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
        present = [f for f in comp.folders(variant) + comp.copied if os.path.isdir(os.path.join(src, f))]
        for folder in comp.folders(variant) + comp.copied:
            if folder not in present and folder not in comp.optional:
                raise FileNotFoundError(f"snapshot {src} has no {folder}/ (needed for component {name!r})")
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
                comp.kind.convert(os.path.join(src, folder), os.path.join(tmp, folder),
                                  None if dtype is None else DTYPES[dtype], allow_pickle, progress, allow_nonfinite)
                written.append(folder)
            for folder in copied:
                shutil.copytree(os.path.join(src, folder), os.path.join(tmp, folder))
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
