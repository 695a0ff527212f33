"""The reference's AR video finetuning (`scripts/train_pyramid_flow.sh`) for miniFLUX 384p: temporal pyramid,
sample_ratios 1:2:1, lr 5e-5 with 1000 warmup steps, bf16 compute on fp32 master weights, 16 latent frames.

Set `snapshot=<pyramid-flow-miniflux folder>` on the command line. The reference's global batch is 64 samples
(4 per GPU x 8 GPUs x 2 accumulation steps); gradient accumulation is not implemented here, so use batch_size 64
if it fits, or a smaller one with a correspondingly smaller learning rate.
"""

from pyramid_jax.training.config import DataConfig, MeshConfig, TrainConfig
from pyramid_jax.training.loop import LoopConfig
from pyramid_jax.training.remat import RematPolicy
from pyramid_jax.training.train_step import StepConfig


def get_config() -> TrainConfig:
    return TrainConfig(
        snapshot="pyramid-flow-miniflux",
        variant="diffusion_transformer_384p",
        output_dir="out/train_miniflux_384p_ar",
        mesh=MeshConfig(data=1, fsdp=-1),
        data=DataConfig(batch_size=8, frames=16, height=48, width=80),
        step=StepConfig(remat=RematPolicy.DOTS_NO_BATCH),
        loop=LoopConfig(num_steps=40_000, max_units=16, log_every=10, save_every=2000),
    )
