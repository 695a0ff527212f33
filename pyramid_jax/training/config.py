"""A training run's configuration: nested frozen dataclasses in `configs/train/<name>.py`, changed from the
command line with dotted `key=value` overrides (`loop.num_steps=100 step.optimizer.learning_rate=1e-4`).

An override naming a field that does not exist is an error that lists the fields there are.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib.util
import math
import os
from typing import Any, Sequence

from pyramid_jax.config import ConfigError
from pyramid_jax.validation import MAX_SEED


def load_train_config(path: str):
    """Runs `get_config()` of the Python file `path` (e.g. `configs/train/miniflux_384p_ar.py`): a run config, such
    as a `TrainConfig` (a DiT run) or a `VAETrainConfig` (a VAE run; `train.py` picks the run by the type)."""

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no training config file {path}")
    spec = importlib.util.spec_from_file_location(f"pyramid_jax_train_config_{os.path.basename(path)[:-3]}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        config = module.get_config()
    except Exception as e:  # noqa: BLE001 - a broken config file is the user's to fix: name it and the error
        raise ConfigError(f"{path}: {type(e).__name__}: {e} (--debug shows where)") from e
    if not dataclasses.is_dataclass(config):
        raise ConfigError(f"{path}: get_config() returned {type(config).__name__}, not a run config")
    return config


def _parse(text: str, current: Any) -> Any:
    """`text` as a value of `current`'s type (Python literal syntax; tuples also from a,b,c)."""
    if isinstance(current, enum.Enum):
        return type(current)(text)
    if isinstance(current, str):
        return text
    if isinstance(current, bool):
        if text.lower() not in ("true", "false"):
            raise ConfigError(f"expected true or false, got {text!r}")
        return text.lower() == "true"
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    if isinstance(current, tuple) and not isinstance(value, tuple):
        value = tuple(value) if isinstance(value, list) else (value,)
    if isinstance(current, float) and isinstance(value, int):
        value = float(value)
    if current is not None and not isinstance(value, type(current)):
        raise ConfigError(f"expected {type(current).__name__}, got {text!r}")
    return value


def override(config: Any, key: str, text: str, _prefix: str = "") -> Any:
    """`config` with the field at dotted path `key` set from the string `text`."""
    name, _, rest = key.partition(".")
    path = _prefix + name
    fields = {f.name for f in dataclasses.fields(config)}
    if name not in fields:
        raise ConfigError(f"unknown config key {_prefix + key!r}: {type(config).__name__} has {sorted(fields)}")
    current = getattr(config, name)
    if rest:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"config key {path!r} is a {type(current).__name__}, not a group of settings")
        return dataclasses.replace(config, **{name: override(current, rest, text, path + ".")})
    if dataclasses.is_dataclass(current):
        raise ConfigError(f"config key {path!r} is a group; set one of its fields, e.g. {path}.<field>=...")
    try:
        return dataclasses.replace(config, **{name: _parse(text, current)})
    except (ConfigError, ValueError) as e:
        raise ConfigError(f"config key {path!r}: {e}") from None


def apply_overrides(config, overrides: Sequence[str]):
    """Applies `key=value` strings in order, then checks every value's range (`check_values`)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        config = override(config, key.strip(), text.strip())
    check_values(config)
    return config


# Least values of integer fields, by field name wherever the field sits (`loop.num_steps`, `data.batch_size`, ...):
# a value below fails before any model loads, instead of a ZeroDivisionError mid-run or an untrained export.
MINIMA = dict(num_steps=0, seed=0, batch_size=1, save_every=1, log_every=1, max_units=1, grad_accum=1, max_to_keep=1,
              read_threads=1, prefetch=0, frames=1, height=1, width=1, text_length=1, ema_every=1, warmup_steps=0,
              decay_steps=0)


def check_values(config, _prefix: str = "") -> None:
    """Every integer field at least its `MINIMA` entry (seeds at most 2^63-1), no NaN anywhere; errors name the
    dotted key."""
    for f in dataclasses.fields(config):
        value, key = getattr(config, f.name), _prefix + f.name
        if dataclasses.is_dataclass(value):
            check_values(value, key + ".")
        elif isinstance(value, float) and math.isnan(value):
            raise ConfigError(f"config key {key!r} is NaN")
        elif f.name in MINIMA and isinstance(value, int) and not isinstance(value, bool):
            if value < MINIMA[f.name] or (f.name == "seed" and value > MAX_SEED):
                raise ConfigError(f"config key {key!r} must be at least {MINIMA[f.name]}"
                                  + (f" and at most {MAX_SEED}" if f.name == "seed" else "") + f"; got {value}")
