"""The embedded demo's VAE, stage 4 (tools/build_shapes_demo.py runs it after rescaling the stage-3 VAE's latent
space): the decoder alone once more, 6000 steps with stage 3's other settings, on the rescaled VAE, whose encoder,
and so the latents the DiT learns, stay fixed. Stage 3 ends with the decoder's loss still falling; this run takes it
from 0.17 to 0.06 and rounds squares less: in a round trip of 36 rendered clips 35 shapes read right instead of 33
(squares 11 of 12, their median bounding-box fill 0.92 instead of 0.90). With the committed DiT the judge read 78 of
84 generated videos in one piece instead of 72 (3000 steps: 74).

    python train.py --config configs/train/shapes_vae_rescaled_decoder.py
"""

import dataclasses
import os

from pyramid_jax.training.config import load_train_config

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = 6000


def get_config():
    decoder = load_train_config(os.path.join(HERE, "shapes_vae_decoder.py"))
    work = os.path.dirname(decoder.output_dir)
    return dataclasses.replace(
        decoder,
        vae=os.path.join(work, "vae_rescaled"),
        output_dir=os.path.join(work, "vae_rescaled_decoder_run"),
        step=dataclasses.replace(decoder.step, optimizer=dataclasses.replace(  # the cosine fills the steps after warmup
            decoder.step.optimizer, decay_steps=STEPS - decoder.step.optimizer.warmup_steps)),
        loop=dataclasses.replace(decoder.loop, num_steps=STEPS),
    )
