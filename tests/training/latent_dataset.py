"""A small pre-extracted dataset on disk (latents .npy, text features .npz, jsonl) for the data tests."""

import json

import numpy as np

from pyramid_jax.sampling import TextConditioning
from pyramid_jax.training.data.storage import save_latents, save_text


def write_dataset(folder, latent_shapes, text_len=8, text_dim=32, pooled_dim=24, seed=0):
    """One record per latent shape `(T, h, w, C)`; returns the annotation path. Paths in it are relative."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.jsonl", "w") as f:
        for i, shape in enumerate(latent_shapes):
            save_latents(str(folder / f"{i}.npy"), rng.standard_normal(shape).astype(np.float16))
            mask = (np.arange(text_len) < text_len - 2).astype(np.int32)
            save_text(str(folder / f"{i}.npz"), TextConditioning(
                rng.standard_normal((text_len, text_dim)).astype(np.float16), mask,
                rng.standard_normal(pooled_dim).astype(np.float16)))
            f.write(json.dumps({"text": f"caption {i}", "latent": f"{i}.npy", "text_fea": f"{i}.npz"}) + "\n")
    return str(folder / "train.jsonl")
