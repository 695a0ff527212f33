"""The training state of a VAE trained with the PatchGAN: the VAE's `TrainState` and the discriminator's.

It reads like the VAE's state (`step`, `num_skipped`, `params`, `ema`, `buffers`), so the loop, the checkpoints
and the export treat both kinds of run alike; only the VAE is exported.
"""

from __future__ import annotations

from flax import struct

from pyramid_jax.training.train_state import TrainState


@struct.dataclass
class GANTrainState:
    vae: TrainState
    discriminator: TrainState

    step = property(lambda self: self.vae.step)
    num_skipped = property(lambda self: self.vae.num_skipped)
    params = property(lambda self: self.vae.params)
    ema = property(lambda self: self.vae.ema)
    buffers = property(lambda self: self.vae.buffers)
