"""AR video finetuning of miniFLUX at 768p: the 384p recipe (configs/train/miniflux_384p_ar.py) on the 768p variant,
31 latent frames (10 s), with full remat: a 768p unit has 4x the tokens of a 384p one, and keeping only each block's
inputs is what lets its training step fit a TPU v5p chip with FSDP over a slice (`bench/fit.py --programs train`).

    python train.py --config configs/train/miniflux_768p_ar.py snapshot=<pyramid-flow-miniflux folder> \
        data.annotation=<text_dir>/annotation.jsonl data.null_text=<text_dir>/null_text.npz
"""

import dataclasses
import os

from pyramid_jax.training.config import load_train_config


def get_config():
    config = load_train_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "miniflux_384p_ar.py"))
    return dataclasses.replace(
        config,
        variant="diffusion_transformer_768p",
        output_dir="out/train_miniflux_768p_ar",
        data=dataclasses.replace(config.data, frames=31),
        remat_policy="full",
        loop=dataclasses.replace(config.loop, max_units=31),
    )
