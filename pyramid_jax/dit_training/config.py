"""A DiT training run's configuration (`configs/train/<name>.py` returning a `TrainConfig`); loaded and overridden
by `training.config`."""

from __future__ import annotations

import dataclasses

from pyramid_jax.config import ConfigError
from pyramid_jax.dit_training.train_step import StepConfig
from pyramid_jax.layers.remat import REMAT_POLICIES
from pyramid_jax.lora.config import LoraConfig
from pyramid_jax.parallel.distributed import Distributed
from pyramid_jax.parallel.mesh import MeshConfig
from pyramid_jax.training.data.config import DataConfig
from pyramid_jax.training.loop import LoopConfig


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    snapshot: str  # a Pyramid Flow snapshot folder (released torch layout or converted)
    variant: str = "diffusion_transformer_384p"  # the DiT subfolder trained
    from_scratch: bool = False  # initialise the DiT randomly from the folder's config.json instead of its weights
    compute_dtype: str = "bfloat16"  # matmul dtype; master weights and optimizer state stay float32
    output_dir: str = "out/train"  # checkpoints go to <output_dir>/checkpoints
    max_to_keep: int = 3
    ema: bool = True
    remat_policy: str = "none"  # the DiT config's per-block remat policy (layers/remat.py), e.g. "dots_no_batch"
    scan_layers: bool = False  # run the DiT block stacks as one lax.scan (fast compiles for deep models)
    fast_compile: bool = False  # step programs at XLA backend optimisation 0 (train_step.FAST_COMPILE): short CPU runs
    distributed: Distributed = Distributed.AUTO  # jax.distributed.initialize(): auto-detected, on or off
    mesh: MeshConfig = MeshConfig()
    data: DataConfig = DataConfig()
    step: StepConfig = StepConfig()
    loop: LoopConfig = LoopConfig(num_steps=40_000)
    lora: LoraConfig = LoraConfig()  # lora.rank > 0: train adapters only; the run exports them to <output_dir>/lora

    def __post_init__(self):
        if self.remat_policy not in REMAT_POLICIES:
            raise ConfigError(f"unknown remat_policy {self.remat_policy!r}; choose one of {sorted(REMAT_POLICIES)}")
