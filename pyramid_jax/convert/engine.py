"""The one converter engine: declarative tables map torch state-dict keys to NNX state paths.

A table renames keys with ordered regex substitutions, then the first leaf rule that fully matches the renamed
key gives the NNX path and the layout transform; keys matching one of its `ignored` patterns are skipped.
Planning checks every key and shape before any tensor is read, and fails with one error listing every missing,
unexpected or mis-shaped key.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterator

import ml_dtypes
import numpy as np

from pyramid_jax.convert.sources import TensorSource
from pyramid_jax.errors import UserError

Path = tuple[str | int, ...]


@dataclasses.dataclass(frozen=True)
class Permute:
    """Axis permutation from the torch layout to ours; `Permute()` copies as is."""

    axes: tuple[int, ...] = ()

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape[a] for a in self.axes) if self.axes else tuple(shape)

    def __call__(self, array: np.ndarray) -> np.ndarray:
        return np.transpose(array, self.axes) if self.axes else array


COPY = Permute()
LINEAR = Permute((1, 0))  # torch Linear weight [out, in] -> Dense kernel [in, out]
CONV2D = Permute((2, 3, 1, 0))  # OIHW -> HWIO
CONV3D = Permute((2, 3, 4, 1, 0))  # OIDHW -> DHWIO


@dataclasses.dataclass(frozen=True)
class Leaf:
    """A renamed torch key matching `pattern` (fully) goes to the dotted NNX path `target` via `transform`."""

    pattern: str
    target: str
    transform: Permute = COPY


@dataclasses.dataclass(frozen=True)
class ConversionTable:
    name: str
    renames: tuple[tuple[str, str], ...]
    leaves: tuple[Leaf, ...]
    ignored: tuple[str, ...] = ()  # source keys that are no parameter here (documented where a table lists them)

    def target(self, key: str) -> tuple[Path, Permute] | None:
        renamed = key
        for pattern, repl in self.renames:
            renamed = re.sub(pattern, repl, renamed)
        for leaf in self.leaves:
            m = re.fullmatch(leaf.pattern, renamed)
            if m:
                return _parse_path(m.expand(leaf.target)), leaf.transform
        return None


def _parse_path(dotted: str) -> Path:
    return tuple(int(p) if p.isdigit() else p for p in dotted.split("."))


class ConversionError(UserError, ValueError):
    """The checkpoint does not fit the model: lists every missing, unexpected and mis-shaped key."""


@dataclasses.dataclass(frozen=True)
class Step:
    key: str
    path: Path
    transform: Permute


def plan(table: ConversionTable, source_shapes: dict[str, tuple[int, ...]],
         expected: dict[Path, tuple[int, ...]]) -> list[Step]:
    """Maps every source key onto `expected` (NNX path -> shape) or raises `ConversionError` naming all problems."""
    steps, unexpected, misshaped, claimed = [], [], [], {}
    for key, shape in source_shapes.items():
        if any(re.fullmatch(p, key) for p in table.ignored):
            continue
        hit = table.target(key)
        if hit is None or hit[0] not in expected:
            unexpected.append(f"{key} {list(shape)}" + ("" if hit is None else f" (-> {_fmt(hit[0])})"))
            continue
        path, transform = hit
        if path in claimed:
            unexpected.append(f"{key} (maps to {_fmt(path)}, already filled by {claimed[path]})")
            continue
        claimed[path] = key
        if len(shape) != len(transform.axes or shape) or transform.shape(shape) != tuple(expected[path]):
            misshaped.append(f"{key}: checkpoint {list(shape)}, model {_fmt(path)} wants "
                             f"{list(expected[path])} (torch layout {_torch_shape(expected[path], transform)})")
            continue
        steps.append(Step(key, path, transform))
    missing = [f"{_fmt(p)} {list(s)}" for p, s in expected.items() if p not in claimed]
    if unexpected or missing or misshaped:
        parts = [f"checkpoint does not match the {table.name} model:"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if items:
                parts.append(f"  {len(items)} {title} key(s):\n" + "\n".join(f"    {i}" for i in items))
        raise ConversionError("\n".join(parts))
    return steps


def run(steps: list[Step], source: TensorSource, dtype=None, progress: Callable[[Iterator], Iterator] = iter,
        check_finite: bool = False) -> Iterator[tuple[Path, np.ndarray]]:
    """Yields (NNX path, converted array) one tensor at a time, so callers can place each and drop it.

    A weight that is not floating point is refused (casting integers to a float dtype would hide a wrong file);
    with `check_finite`, a weight holding NaN or inf fails too, naming the key and the count.
    """
    for step in progress(steps):
        array = source.read(step.key)
        if not is_float(array.dtype):
            raise ConversionError(f"weight {step.key!r} is {array.dtype}, not floating point: not a model weight "
                                  "(a wrong or corrupted checkpoint?)")
        if check_finite:
            bad = array.size - int(np.count_nonzero(np.isfinite(array)))
            if bad:
                raise ConversionError(f"weight {step.key!r} {list(array.shape)} holds {bad} NaN or infinite "
                                      "value(s); pass --allow-nonfinite (allow_nonfinite=True) to convert anyway")
        array = np.ascontiguousarray(step.transform(array))
        yield step.path, array if dtype is None else array.astype(dtype)


def is_float(dtype) -> bool:
    return np.issubdtype(dtype, np.floating) or np.dtype(dtype) == np.dtype(ml_dtypes.bfloat16)


def _fmt(path: Path) -> str:
    return "/".join(str(p) for p in path)


def _torch_shape(shape: tuple[int, ...], transform: Permute) -> list[int]:
    if not transform.axes:
        return list(shape)
    inverse = np.argsort(transform.axes)
    return [shape[a] for a in inverse]
