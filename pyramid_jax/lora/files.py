"""LoRA folders: `config.json` (what the adapters were made for: DiT family, rank, scale, the adapted kernels and
their shapes) + an Orbax checkpoint of the A and B arrays, a few MB. A folder is checked against the DiT it is
applied to from its config.json and the checkpoint's metadata, before any array is read or any model loaded."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Sequence

import jax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh

from pyramid_jax.dit.load import abstract_dit
from pyramid_jax.errors import UserError
from pyramid_jax.io import weights
from pyramid_jax.io.atomic import atomic_directory
from pyramid_jax.lora.adapters import A, B, adapter_variables, apply_adapters, path_name
from pyramid_jax.lora.config import LoraConfig

FORMAT = "pyramid_jax.lora/1"


class LoraError(UserError, ValueError):
    """A LoRA folder or scale that cannot be applied to the DiT at hand."""


def save_lora(folder: str, adapters: nnx.State, config: LoraConfig, dit_config) -> str:
    """Writes the adapters and their record to `folder` atomically (replacing an older one); returns it."""
    flat = dict(nnx.to_flat_state(adapters))
    kernels = {path_name(p[:-1] + ("kernel",)): [flat[p].get_value().shape[0], flat[p[:-1] + (B,)].get_value().shape[1]]
               for p in flat if p[-1] == A}
    record = dict(format=FORMAT, family=dit_config.CLASS_NAME, rank=config.rank, alpha=config.alpha or config.rank,
                  scale=config.scale, targets=config.targets, kernels=kernels)
    with atomic_directory(folder, overwrite=True) as tmp:
        weights.write_converted(tmp, record, [(path, var.get_value()) for path, var in flat.items()])
    return folder


@dataclasses.dataclass(frozen=True)
class CheckedLora:
    """A LoRA folder found fit for a DiT: its abstract adapters and the scale they are applied with."""

    folder: str
    scale: float  # the caller's scale x the folder's alpha / rank
    abstract: nnx.State


def _stored_shapes(folder: str) -> dict[str, tuple[int, ...]]:
    meta = ocp.StandardCheckpointer().metadata(os.path.abspath(os.path.join(folder, weights.PARAMS_DIR)))
    tree = getattr(meta, "item_metadata", meta).tree
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {"/".join(k.key for k in keys): tuple(leaf.shape) for keys, leaf in leaves}


def check_lora(folder: str, scale, dit_config, params: nnx.State) -> CheckedLora:
    """Checks LoRA `folder` with `scale` against the DiT of `dit_config` whose (abstract or concrete) parameters
    are `params`: a finite scale, the format, the DiT family, each adapted kernel's presence and shape (the DiT
    size) and each array's shape for the folder's rank (the rank layout). Each failure names what is wrong."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise LoraError(f"the scale of LoRA {folder} is {scale!r}; it must be a finite number")
    if not weights.is_converted(folder):
        raise LoraError(f"{folder} is not a LoRA folder (it needs {weights.CONFIG_FILE} and {weights.PARAMS_DIR}/)")
    with open(os.path.join(folder, weights.CONFIG_FILE)) as f:
        record = json.load(f)
    if record.get("format") != FORMAT:
        raise LoraError(f"{folder}/{weights.CONFIG_FILE} is not a LoRA record (format {record.get('format')!r}, "
                        f"expected {FORMAT!r})")
    if record["family"] != dit_config.CLASS_NAME:
        raise LoraError(f"LoRA {folder} was made for a {record['family']} DiT, not for this {dit_config.CLASS_NAME}")
    kernels = {path_name(path): (path, var) for path, var in nnx.to_flat_state(params)}
    stored, rank, entries = _stored_shapes(folder), record["rank"], []
    for name, (fan_in, fan_out) in record["kernels"].items():
        if name not in kernels:
            raise LoraError(f"LoRA {folder} adapts {name}, which this DiT does not have: it was made for another "
                            "DiT size")
        path, var = kernels[name]
        if tuple(var.get_value().shape) != (fan_in, fan_out):
            raise LoraError(f"LoRA {folder} was made for another DiT size: its {name} is [{fan_in}, {fan_out}], this "
                            f"DiT's is {list(var.get_value().shape)}")
        module = name.rsplit("/", 1)[0]
        want = {A: (fan_in, rank), B: (rank, fan_out)}
        for part, shape in want.items():
            if stored.get(f"{module}/{part}") != shape:
                raise LoraError(f"LoRA {folder} has another rank layout: {module}/{part} is "
                                f"{list(stored.get(f'{module}/{part}', ()))}, rank {rank} needs {list(shape)}")
        pair = adapter_variables(var, *(jax.ShapeDtypeStruct(want[p], jax.numpy.float32) for p in (A, B)))
        entries += [(path[:-1] + (A,), pair[0]), (path[:-1] + (B,), pair[1])]
    extra = sorted(set(stored) - {path_name(p) for p, _ in entries})
    if extra:
        raise LoraError(f"LoRA {folder} holds arrays its {weights.CONFIG_FILE} does not describe: {extra[:4]}")
    return CheckedLora(folder, float(scale) * record["scale"], nnx.from_flat_state(entries))


def load_lora(lora: CheckedLora, mesh: Mesh | None = None) -> nnx.State:
    """The adapters of a checked folder (sharded like the kernels they adapt when `mesh` is given)."""
    flat = nnx.to_flat_state(lora.abstract)
    arrays = dict(weights.converted_arrays(lora.folder, lora.abstract, mesh))
    return nnx.from_flat_state([(path, var.replace(arrays[path])) for path, var in flat])


def merge_loras(model: nnx.Module, loras: Sequence[CheckedLora], mesh: Mesh | None = None) -> nnx.Module:
    """Adds every LoRA into `model`'s kernels in place (kept in their dtype) and returns the model."""
    if loras:
        params = nnx.state(model, nnx.Param)
        nnx.update(model, apply_adapters(params, [(load_lora(x, mesh), x.scale) for x in loras], keep_dtype=True))
    return model


def check_loras(loras: Sequence[tuple[str, float]], dit_config) -> list[CheckedLora]:
    """`check_lora` for each `(folder, scale)` against the DiT of `dit_config` (built abstractly: no weights)."""
    if not loras:
        return []
    _, abstract = abstract_dit(dit_config)
    checked = []
    for item in loras:
        if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], (str, os.PathLike)):
            raise LoraError(f"a LoRA is given as (folder, scale), got {item!r}")
        checked.append(check_lora(os.fspath(item[0]), item[1], dit_config, abstract))
    return checked


def parse_lora_arg(text: str) -> tuple[str, float]:
    """`folder[:scale]` (a command-line --lora) -> (folder, scale); the scale defaults to 1."""
    folder, sep, scale = text.rpartition(":")
    if sep:
        try:
            return folder, float(scale)
        except ValueError:
            pass
    return text, 1.0
