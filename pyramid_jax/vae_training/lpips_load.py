"""`load_lpips`: the frozen LPIPS module from `vgg_lpips.pth`, a safetensors copy, or a converted folder."""

from __future__ import annotations

import glob
import json
import os

import jax.numpy as jnp
from jax.sharding import Mesh

from pyramid_jax.config import ConfigError
from pyramid_jax.convert.lpips_table import LPIPS_TABLE
from pyramid_jax.convert.sources import SafetensorsSource, TensorSource, TorchBinSource, open_torch_checkpoint
from pyramid_jax.io import weights
from pyramid_jax.vae_training.lpips import LPIPS, VGG16_WIDTHS

CLASS_NAME = "LPIPS"


def abstract_lpips(widths: tuple[int, ...] = VGG16_WIDTHS, dtype=jnp.float32):
    """(graphdef, abstract state) of `LPIPS(widths)`, nothing allocated."""
    return weights.abstract_module(lambda: LPIPS(widths, dtype=dtype, param_dtype=dtype))


def open_lpips_checkpoint(path: str, *, allow_pickle: bool = False) -> TensorSource:
    """A `.pth` / `.safetensors` file, or a folder holding `.safetensors` (preferred), `.pth` or `.bin` weights."""
    if os.path.isdir(path):
        pickles = sorted(glob.glob(os.path.join(path, "*.pth")))
        if not pickles or glob.glob(os.path.join(path, "*.safetensors")):
            return open_torch_checkpoint(path, allow_pickle=allow_pickle)
        files = pickles
    elif os.path.isfile(path):
        files = [path]
    else:
        raise FileNotFoundError(f"LPIPS weights not found: {path}")
    if files[0].endswith(".safetensors"):
        return SafetensorsSource(files)
    if not allow_pickle:
        raise ValueError(f"{files[0]} is a torch pickle; pass allow_pickle=True to read it (tensors only, no code is run)")
    return TorchBinSource(files)


def load_lpips(path: str, *, widths: tuple[int, ...] = VGG16_WIDTHS, dtype=jnp.float32, mesh: Mesh | None = None,
               allow_pickle: bool = False) -> LPIPS:
    """LPIPS from torch weights (strict: every key and shape must match) or a `convert_lpips` folder.

    With `mesh`, every weight is replicated over it.
    """
    graphdef, abstract = abstract_lpips(widths, dtype)
    if weights.is_converted(path):
        _check_config(path, widths)
        arrays = weights.converted_arrays(path, abstract, mesh)
    else:
        source = open_lpips_checkpoint(path, allow_pickle=allow_pickle)
        arrays = weights.torch_arrays(LPIPS_TABLE, source, abstract)
    return weights.materialize(graphdef, abstract, arrays, mesh)


def convert_lpips(src: str, dst: str, *, widths: tuple[int, ...] = VGG16_WIDTHS, allow_pickle: bool = False) -> None:
    """Writes the converted folder `dst` (config.json + Orbax checkpoint) from the torch weights `src`."""
    _, abstract = abstract_lpips(widths)
    arrays = weights.torch_arrays(LPIPS_TABLE, open_lpips_checkpoint(src, allow_pickle=allow_pickle), abstract)
    weights.write_converted(dst, {"_class_name": CLASS_NAME, "widths": list(widths)}, arrays)


def _check_config(path: str, widths: tuple[int, ...]) -> None:
    with open(os.path.join(path, weights.CONFIG_FILE)) as f:
        config = json.load(f)
    if config.get("_class_name") != CLASS_NAME or tuple(config.get("widths", ())) != tuple(widths):
        raise ConfigError(f"{path} holds {config}, not LPIPS with widths {list(widths)}")
