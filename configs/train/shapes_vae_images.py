"""The embedded demo's VAE, stage 1 of 2 (tools/build_shapes_demo.py runs both): the small causal VAE of
pyramid_jax/demo/models.py trained from scratch on single frames of the moving-shapes clips (frame 0 of each clip is
coded alone, like an image), reconstruction + KL, no LPIPS, no GAN. The shape's pixels weigh 10x the plain
background's in the MSE: a shape covers ~1/10 of a frame, so unweighted the background owns the loss and the shape's
colour and corners drift. Single frames cost a ninth of a clip and teach the spatial code (shape, colour, place)
fast; stage 2 (configs/train/shapes_vae.py) goes on with 9-frame clips.

    python train.py --config configs/train/shapes_vae_images.py
"""

import os

from pyramid_jax.demo.models import SIZE
from pyramid_jax.demo.shapes import BACKGROUND
from pyramid_jax.parallel.mesh import MeshConfig
from pyramid_jax.snapshot import VAE_FOLDER
from pyramid_jax.training.loop import LoopConfig
from pyramid_jax.training.optimizer import OptimizerConfig
from pyramid_jax.vae_training.config import VAEDataConfig, VAELossConfig, VAEStepConfig, VAETrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(REPO, "out", "shapes_demo")


def get_config() -> VAETrainConfig:
    return VAETrainConfig(
        vae=os.path.join(WORK, "init", VAE_FOLDER),  # config.json only
        from_scratch=True,
        fan_in_init=True,
        initial_logvar=-8.0,
        compute_dtype="float32",
        output_dir=os.path.join(WORK, "vae_images"),
        mesh=MeshConfig(data=1),
        data=VAEDataConfig(annotation=os.path.join(WORK, "data", "train.jsonl"), batch_size=4, frames=1,
                           resolution=(SIZE, SIZE), read_threads=2, prefetch=4),
        step=VAEStepConfig(loss=VAELossConfig(pixel_weight=10.0, kl_weight=1e-5, foreground_weight=9.0,
                                          background=BACKGROUND),
                           optimizer=OptimizerConfig(learning_rate=5e-4, warmup_steps=50, warmup_start=0.0, b2=0.999,
                                                     weight_decay=1e-3)),
        loop=LoopConfig(num_steps=500, seed=0, log_every=100, save_every=250),
    )
