"""The embedded demo's VAE, stage 2 of 2 (tools/build_shapes_demo.py runs both): the stage-1 VAE
(configs/train/shapes_vae_images.py, trained on single frames) goes on with whole 64x64 clips of 9 frames, where it
learns to code 8 frames of motion in one latent frame; its export is the demo's VAE. Frame 0 (coded alone: the
image the i2v mode starts from) weighs 3 frames in the loss, or its colour drifts while the other 8 are learnt.

    python train.py --config configs/train/shapes_vae.py
"""

import dataclasses
import os

from pyramid_jax.demo.models import FRAMES
from pyramid_jax.training.config import load_train_config
from pyramid_jax.training.loop import LoopConfig

HERE = os.path.dirname(os.path.abspath(__file__))


def get_config():
    images = load_train_config(os.path.join(HERE, "shapes_vae_images.py"))
    work = os.path.dirname(images.output_dir)
    return dataclasses.replace(
        images,
        vae=os.path.join(images.output_dir, "model"),
        from_scratch=False,
        fan_in_init=False,
        initial_logvar=None,
        output_dir=os.path.join(work, "vae_run"),
        data=dataclasses.replace(images.data, batch_size=1, frames=FRAMES),
        step=dataclasses.replace(images.step, loss=dataclasses.replace(images.step.loss, first_frame_weight=3.0),
                                 optimizer=dataclasses.replace(images.step.optimizer, decay_steps=2450,
                                                               min_learning_rate=5e-5)),
        loop=LoopConfig(num_steps=2500, seed=0, log_every=100, save_every=500),
    )
