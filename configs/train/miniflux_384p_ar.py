"""The reference's AR video finetuning (`scripts/train_pyramid_flow.sh`) for miniFLUX 384p: temporal pyramid,
sample_ratios 1:2:1, lr 5e-5 with 1000 warmup steps, bf16 compute on fp32 master weights, 16 latent frames,
a global batch of 64 samples in 2 accumulated micro-batches (the reference: 4 per GPU x 8 GPUs x 2 steps).

Data: pre-extracted latents and text features (tools/extract_video_latents.py, tools/extract_text_features.py):
    python train.py --config configs/train/miniflux_384p_ar.py snapshot=<pyramid-flow-miniflux folder> \
        data.annotation=<text_dir>/annotation.jsonl data.null_text=<text_dir>/null_text.npz
On fewer than 8 devices lower data.batch_size (a multiple of 8) or raise step.grad_accum to fit in memory.
"""

from pyramid_jax.dit_training.config import TrainConfig
from pyramid_jax.dit_training.train_step import StepConfig
from pyramid_jax.parallel.mesh import MeshConfig
from pyramid_jax.training.data import DataConfig
from pyramid_jax.training.data import DataSource
from pyramid_jax.training.loop import LoopConfig


def get_config() -> TrainConfig:
    return TrainConfig(
        snapshot="pyramid-flow-miniflux",
        variant="diffusion_transformer_384p",
        output_dir="out/train_miniflux_384p_ar",
        mesh=MeshConfig(data=1, fsdp=-1),
        data=DataConfig(source=DataSource.LATENTS, batch_size=64, frames=16),
        remat_policy="dots_no_batch",
        scan_layers=True,
        step=StepConfig(grad_accum=2),
        loop=LoopConfig(num_steps=40_000, max_units=16, log_every=10, save_every=2000),
    )
