"""A trained model as a model folder (`config.json` + Orbax params) that `load_dit` / `load_vae` and the pipeline
read like a converted release: the EMA weights when the run keeps them, else the trained weights."""

from __future__ import annotations

from flax import nnx

from pyramid_jax.io import weights
from pyramid_jax.io.atomic import atomic_directory
from pyramid_jax.training.train_state import TrainState


def export_model(state: TrainState, config: dict, folder: str) -> str:
    """Writes `folder` atomically (replacing an older export) and returns it; `config` is its config.json."""
    params = state.ema if state.ema is not None else state.params
    arrays = [(path, var.get_value()) for path, var in (*nnx.to_flat_state(params), *nnx.to_flat_state(state.buffers))]
    with atomic_directory(folder, overwrite=True) as tmp:
        weights.write_converted(tmp, config, arrays)
    return folder
