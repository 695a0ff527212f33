"""The device mesh: four named axes, `data`, `fsdp`, `tensor`, `sequence`."""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
from jax.sharding import Mesh

MESH_AXES = ("data", "fsdp", "tensor", "sequence")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Mesh axis sizes of a training config (`make_mesh(**asdict(...))`); one may be -1 for the remaining devices."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    sequence: int = 1


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1, sequence: int = 1, devices=None) -> Mesh:
    """A mesh over `devices` (default: all); one axis may be -1 to take the remaining devices."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = [data, fsdp, tensor, sequence]
    if sizes.count(-1) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got {dict(zip(MESH_AXES, sizes))}")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if len(devices) % known:
            raise ValueError(f"{len(devices)} devices do not divide into mesh {dict(zip(MESH_AXES, sizes))}")
        sizes[sizes.index(-1)] = len(devices) // known
    if math.prod(sizes) != len(devices):
        raise ValueError(f"mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices, "
                         f"{len(devices)} available")
    return Mesh(np.asarray(devices).reshape(sizes), MESH_AXES)


def parse_mesh_axes(text: str) -> dict[str, int]:
    """`"data=2,fsdp=-1"` -> `{"data": 2, "fsdp": -1, "tensor": 1, "sequence": 1}` (`make_mesh` arguments):
    unnamed axes get size 1, and one axis may be -1 for the remaining devices."""
    sizes = dict.fromkeys(MESH_AXES, 1)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name.strip() not in sizes or not value.strip().lstrip("-").isdigit():
            raise ValueError(f"mesh axes are written like data=2,fsdp=4 with axes {MESH_AXES}; got {text!r}")
        sizes[name.strip()] = int(value)
    return sizes
