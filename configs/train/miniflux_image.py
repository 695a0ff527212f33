"""The reference's non-AR script (`scripts/train_pyramid_flow_without_ar.sh`) used for text-to-image: every frame
trained at once, lr 1e-4 with 1000 warmup steps, bf16 compute on fp32 master weights, 1024x1024 images.

Data: images as 1-frame latents, extracted from the reference's image annotations (`image` records) with
    python tools/extract_video_latents.py --annotation images.jsonl --num-frames 1 \
        --resolutions 1024x1024,768x1280,1280x768 ...
then `snapshot=<pyramid-flow-miniflux folder> data.annotation=... data.null_text=...` as for video.
"""

from pyramid_jax.dit_training.config import TrainConfig
from pyramid_jax.dit_training.train_step import StepConfig
from pyramid_jax.parallel.mesh import MeshConfig
from pyramid_jax.training.data import DataConfig
from pyramid_jax.training.data import DataSource
from pyramid_jax.training.loop import LoopConfig
from pyramid_jax.training.optimizer import OptimizerConfig


def get_config() -> TrainConfig:
    return TrainConfig(
        snapshot="pyramid-flow-miniflux",
        variant="diffusion_transformer_image",
        output_dir="out/train_miniflux_image",
        mesh=MeshConfig(data=1, fsdp=-1),
        data=DataConfig(source=DataSource.LATENTS, batch_size=8, frames=1),
        step=StepConfig(optimizer=OptimizerConfig(learning_rate=1e-4)),
        loop=LoopConfig(num_steps=40_000, temporal_pyramid=False, log_every=10, save_every=2000),
    )
