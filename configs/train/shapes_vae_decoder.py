"""The embedded demo's VAE, stage 3 (tools/build_shapes_demo.py runs it after the DiT): the stage-2 VAE's decoder
goes on alone with whole clips while its encoder, and so the latents the DiT was trained on, stay as they are. The
two joint stages leave corners rounded and triangles blob-like in the 8 frames of a latent frame; the decoder sharpens
them at no cost to the DiT.

    python train.py --config configs/train/shapes_vae_decoder.py
"""

import dataclasses
import os

from pyramid_jax.training.config import load_train_config
from pyramid_jax.training.loop import LoopConfig
from pyramid_jax.training.optimizer import OptimizerConfig

HERE = os.path.dirname(os.path.abspath(__file__))


def get_config():
    clips = load_train_config(os.path.join(HERE, "shapes_vae.py"))
    work = os.path.dirname(clips.output_dir)
    return dataclasses.replace(
        clips,
        vae=os.path.join(clips.output_dir, "model"),
        decoder_only=True,
        output_dir=os.path.join(work, "vae_decoder_run"),
        step=dataclasses.replace(clips.step, optimizer=OptimizerConfig(
            learning_rate=5e-4, warmup_steps=50, warmup_start=0.0, b2=0.999, weight_decay=1e-3, decay_steps=2950,
            min_learning_rate=5e-5)),
        loop=LoopConfig(num_steps=3000, seed=1, log_every=100, save_every=500),
    )
