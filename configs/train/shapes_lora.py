"""The LoRA that teaches the embedded demo a word it never saw (tools/teach_shapes_lora.py prepares the data, passes
its folders as overrides and runs this): rank-16 adapters on every attention and MLP kernel of the demo DiT and on
its text-input linears, the DiT frozen, on latents of clips half of which show the new word and half the trained
ones (replayed, so that they are not forgotten).

    python train.py --config configs/train/shapes_lora.py
"""

import os

from pyramid_jax.demo.models import FRAMES
from pyramid_jax.dit_training.config import TrainConfig
from pyramid_jax.dit_training.train_step import StepConfig
from pyramid_jax.lora.config import LoraConfig
from pyramid_jax.parallel.mesh import MeshConfig
from pyramid_jax.training.data import DataConfig
from pyramid_jax.training.data import DataSource
from pyramid_jax.training.data.frames import latent_frames
from pyramid_jax.training.loop import LoopConfig
from pyramid_jax.training.optimizer import OptimizerConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(REPO, "out", "shapes_lora")  # tools/teach_shapes_lora.py's default working folder
LATENT_FRAMES = latent_frames(FRAMES)
STEPS = 2000


def get_config() -> TrainConfig:
    return TrainConfig(
        snapshot=os.path.join(WORK, "snapshot"),  # the demo snapshot, its text stack knowing the new word
        compute_dtype="float32",
        output_dir=os.path.join(WORK, "lora_run"),
        ema=False,
        mesh=MeshConfig(data=1),
        data=DataConfig(source=DataSource.LATENTS, annotation=os.path.join(WORK, "features", "annotation.jsonl"),
                        null_text=os.path.join(WORK, "features", "null_text.npz"), batch_size=16, frames=LATENT_FRAMES,
                        read_threads=2),
        step=StepConfig(optimizer=OptimizerConfig(learning_rate=2e-3, warmup_steps=50, decay_steps=STEPS,
                                                  min_learning_rate=2e-4)),
        loop=LoopConfig(num_steps=STEPS, seed=0, max_units=LATENT_FRAMES, log_every=100, save_every=500),
        lora=LoraConfig(rank=16, targets="all,text"),
    )
