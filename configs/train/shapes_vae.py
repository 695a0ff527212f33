"""The embedded demo's VAE (tools/build_shapes_demo.py runs it): the small causal VAE of pyramid_jax/demo/models.py
trained from scratch on random 32x32 crops of the moving-shapes clips (9 frames), reconstruction + KL (no LPIPS,
no GAN), on CPU in minutes.

    python train.py --config configs/train/shapes_vae.py
"""

import os

from pyramid_jax.parallel.mesh import MeshConfig
from pyramid_jax.training.loop import LoopConfig
from pyramid_jax.training.optimizer import OptimizerConfig
from pyramid_jax.vae_training.config import VAEDataConfig, VAELossConfig, VAEStepConfig, VAETrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(REPO, "out", "shapes_demo")


def get_config() -> VAETrainConfig:
    return VAETrainConfig(
        vae=os.path.join(WORK, "init", "causal_video_vae"),  # config.json only
        from_scratch=True,
        initial_logvar=-8.0,
        compute_dtype="float32",
        output_dir=os.path.join(WORK, "vae_run"),
        mesh=MeshConfig(data=1),
        data=VAEDataConfig(annotation=os.path.join(WORK, "data", "train.jsonl"), batch_size=2, frames=9,
                           resolution=(64, 64), read_threads=2, prefetch=4),
        step=VAEStepConfig(
            loss=VAELossConfig(pixel_weight=10.0, kl_weight=1e-5),
            optimizer=OptimizerConfig(learning_rate=5e-4, warmup_steps=100, warmup_start=0.0, b2=0.999,
                                      weight_decay=1e-3, decay_steps=3900, min_learning_rate=5e-5),
            crop=(32, 32)),
        loop=LoopConfig(num_steps=4000, seed=0, log_every=100, save_every=500),
    )
