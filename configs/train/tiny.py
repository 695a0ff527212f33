"""Smoke run on the tiny miniFLUX snapshot in tests/fixtures (random weights, synthetic data, runs on CPU)."""

import os

from pyramid_jax.dit_training.config import TrainConfig
from pyramid_jax.dit_training.train_step import StepConfig
from pyramid_jax.training.data import DataConfig
from pyramid_jax.training.loop import LoopConfig
from pyramid_jax.training.optimizer import OptimizerConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def get_config() -> TrainConfig:
    return TrainConfig(
        snapshot=os.path.join(REPO, "tests", "fixtures", "snapshots", "miniflux_tiny"),
        compute_dtype="float32",
        scan_layers=True,  # one block body per kind in the program: ~18% fewer XLA kernels, a faster compile
        fast_compile=True,  # about half the compile seconds; compiling dominates a short run of this small model
        output_dir=os.path.join(REPO, "out", "train_tiny"),
        data=DataConfig(batch_size=4, frames=3, height=16, width=16),
        step=StepConfig(optimizer=OptimizerConfig(learning_rate=1e-3, warmup_steps=10), ema_every=10),
        loop=LoopConfig(num_steps=30, max_units=3, log_every=10, save_every=10),
    )
