"""The embedded demo's DiT (tools/build_shapes_demo.py runs it): the small miniFLUX DiT of pyramid_jax/demo/models.py
trained from scratch with the AR temporal pyramid on latents of the moving-shapes clips. The captions' text features
are cut to their first 24 positions (`data.text_tokens`; the longest demo caption has 16 with its `</s>`, the rest is
masked padding): the reference's 128 T5 positions made 4/5 of each step's sequence and cost 4x the step time.

    python train.py --config configs/train/shapes_dit.py
"""

import os

from pyramid_jax.demo.models import FRAMES
from pyramid_jax.dit_training.config import TrainConfig
from pyramid_jax.dit_training.train_step import StepConfig
from pyramid_jax.parallel.mesh import MeshConfig
from pyramid_jax.training.data import DataConfig
from pyramid_jax.training.data import DataSource
from pyramid_jax.training.data.frames import latent_frames
from pyramid_jax.training.loop import LoopConfig
from pyramid_jax.training.optimizer import OptimizerConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(REPO, "out", "shapes_demo")
LATENT_FRAMES = latent_frames(FRAMES)  # the whole clip: every AR unit of it trained


def get_config() -> TrainConfig:
    return TrainConfig(
        snapshot=os.path.join(WORK, "init"),  # the demo text encoders + the DiT's config.json
        from_scratch=True,
        compute_dtype="float32",
        output_dir=os.path.join(WORK, "dit_run"),
        mesh=MeshConfig(data=1),
        data=DataConfig(source=DataSource.LATENTS, annotation=os.path.join(WORK, "features", "annotation.jsonl"),
                        null_text=os.path.join(WORK, "features", "null_text.npz"), batch_size=16, frames=LATENT_FRAMES,
                        read_threads=2, text_tokens=24),
        step=StepConfig(optimizer=OptimizerConfig(learning_rate=5e-4, warmup_steps=100, decay_steps=11_900,
                                                  min_learning_rate=5e-5), ema_decay=0.99,
                        ema_every=1),
        loop=LoopConfig(num_steps=12_000, seed=0, max_units=LATENT_FRAMES, log_every=100, save_every=1000),
    )
