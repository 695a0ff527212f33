"""Typed, frozen component configs built from released `config.json` files.

Every component config is a frozen dataclass. `from_dict` refuses unknown fields (naming them) unless they are
on the class's explicit `IGNORED_FIELDS` list, so a typo or a config from another model never loads silently.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, ClassVar, TypeVar

from pyramid_jax.errors import UserError

C = TypeVar("C", bound="FrozenConfig")

# Bookkeeping keys that diffusers / transformers write into every config.json; they carry no architecture.
HUB_BOOKKEEPING_FIELDS = frozenset({"_class_name", "_diffusers_version", "_name_or_path", "_commit_hash"})


class ConfigError(UserError, ValueError):
    """A config file or override names a field the component does not have, or has a bad value."""


def read_json(path: str) -> dict:
    """A JSON object file; malformed JSON fails naming the file, line and column."""
    try:
        with open(path) as f:
            values = json.load(f)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text file ({e.reason})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a JSON object {{...}}, got a {type(values).__name__}")
    return values


@dataclasses.dataclass(frozen=True)
class FrozenConfig:
    """Base for component configs: strict construction from dicts and JSON round-trips."""

    # Fields a released config.json may carry that this port deliberately does not use (each documented
    # where a subclass lists it).
    IGNORED_FIELDS: ClassVar[frozenset[str]] = frozenset()
    # Fields a config file must give (the shapes): a missing one is an error, not a silent default.
    REQUIRED_FIELDS: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any], **overrides: Any) -> C:
        """Builds the config from `values` (e.g. a parsed config.json); `overrides` win over `values`."""
        known = cls.field_names()
        ignorable = HUB_BOOKKEEPING_FIELDS | cls.IGNORED_FIELDS
        unknown = sorted(k for k in values if k not in known and k not in ignorable)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown config field(s) {unknown}; known fields are {sorted(known)}")
        bad_overrides = sorted(k for k in overrides if k not in known and k not in ignorable)
        if bad_overrides:
            raise ConfigError(f"{cls.__name__}: unknown override(s) {bad_overrides}; known fields are {sorted(known)}")
        merged = {k: v for k, v in values.items() if k in known}
        merged.update({k: v for k, v in overrides.items() if k in known})
        merged = {k: tuple(v) if isinstance(v, list) else v for k, v in merged.items()}
        _check_types(cls, merged)
        try:
            return cls(**merged)
        except TypeError as e:  # a required field is missing
            raise ConfigError(f"{cls.__name__}: {e}") from None

    @classmethod
    def from_json_file(cls: type[C], path: str | os.PathLike, **overrides: Any) -> C:
        return cls.from_dict(read_json(path), **overrides)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def replace(self: C, **changes: Any) -> C:
        return type(self).from_dict(self.to_dict(), **changes)


_SIMPLE_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def _type_ok(value, annotation: str) -> bool:
    """`value` fits the simple annotation (int, float, bool, str, tuple[X, ...]); anything else is not checked."""
    if annotation.startswith("tuple[") and annotation.endswith(", ...]"):
        return isinstance(value, tuple) and all(_type_ok(v, annotation[6:-6]) for v in value)
    if annotation not in _SIMPLE_TYPES:
        return True
    if annotation == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _SIMPLE_TYPES[annotation])


def _check_types(cls, values: dict[str, Any]) -> None:
    annotations = {f.name: f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
                   for f in dataclasses.fields(cls)}
    for name, value in values.items():
        if not _type_ok(value, annotations[name]):
            raise ConfigError(f"{cls.__name__}.{name} must be {annotations[name]}; got {value!r} "
                              f"({type(value).__name__})")
