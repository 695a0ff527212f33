"""The embedded demo's VAE, stage 3 of 3 (tools/build_shapes_demo.py runs all three): the stage-2 VAE's decoder goes
on alone with whole clips while its encoder, and so the latents the DiT learns, stay as stage 2 left them. After the
two joint stages the decoder is still undertrained: squares come back round and triangles as blobs (a round trip of
36 rendered clips read 14 shapes right); 3000 more decoder steps read 31, at no cost to the DiT's latents.

    python train.py --config configs/train/shapes_vae_decoder.py
"""

import dataclasses
import os

from pyramid_jax.training.config import load_train_config

HERE = os.path.dirname(os.path.abspath(__file__))


def get_config():
    clips = load_train_config(os.path.join(HERE, "shapes_vae.py"))
    work = os.path.dirname(clips.output_dir)
    return dataclasses.replace(
        clips,
        vae=os.path.join(clips.output_dir, "model"),
        decoder_only=True,
        output_dir=os.path.join(work, "vae_decoder_run"),
        step=dataclasses.replace(clips.step, optimizer=dataclasses.replace(clips.step.optimizer, decay_steps=2950)),
        loop=dataclasses.replace(clips.loop, num_steps=3000, seed=1),
    )
