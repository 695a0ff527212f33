"""`data.text_tokens`: pre-extracted text features cut to their first positions, which changes no number the DiT
computes (padding is masked out of its attention), only the sequence it pays for."""

import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

import pyramid_jax
import train
from pyramid_jax.dit_training.batches import batch_source
from pyramid_jax.training.data import DataConfig, DataSource
from pyramid_jax.sampling import TextConditioning
from pyramid_jax.training.data.errors import DataError
from pyramid_jax.training.data.storage import save_text

from conftest import FIXTURES
from latent_dataset import write_dataset

ROOT = pathlib.Path(__file__).resolve().parents[2]
SNAPSHOT_DIT = FIXTURES / "snapshots" / "miniflux_tiny" / "diffusion_transformer_384p"


def first_batch(annotation, tokens):
    data = DataConfig(source=DataSource.LATENTS, annotation=annotation, batch_size=4, frames=1, read_threads=1,
                      text_tokens=tokens)
    config = pyramid_jax.load_dit(str(SNAPSHOT_DIT)).config  # 4 latent channels
    return next(iter(batch_source(data, config, seed=0, mesh=None, family="pyramid_flux", log=lambda _: None)(0)))


def test_features_are_cut_to_text_tokens_and_a_longer_caption_is_an_error(tmp_path):
    annotation = write_dataset(tmp_path, [(1, 8, 8, 4)] * 4, text_len=8)  # 6 tokens, then 2 padding positions
    whole, cut = first_batch(annotation, 0), first_batch(annotation, 6)
    np.testing.assert_array_equal(np.asarray(cut.latents), np.asarray(whole.latents))
    assert cut.text.embeds.shape[1] == 6 and np.asarray(cut.text.mask).all()
    np.testing.assert_array_equal(np.asarray(cut.text.embeds), np.asarray(whole.text.embeds)[:, :6])
    np.testing.assert_array_equal(np.asarray(cut.text.pooled), np.asarray(whole.text.pooled))
    with pytest.raises(DataError, match="6 text positions, more than data.text_tokens=5"):
        first_batch(annotation, 5)
    with pytest.raises(ValueError, match="text_tokens must be >= 0"):
        DataConfig(source=DataSource.LATENTS, text_tokens=-1)
    with pytest.raises(ValueError, match="text_features=True"):
        DataConfig(source=DataSource.LATENTS, text_features=False, text_tokens=8)


def test_the_dit_output_does_not_change_when_padding_positions_are_cut():
    rng, batch = np.random.default_rng(0), 2
    sample = [[jnp.asarray(rng.standard_normal((batch, 2, 4, 4, 4), np.float32))]]  # one stage, 2 latent frames
    text = jnp.asarray(rng.standard_normal((batch, 8, 32), np.float32))
    mask = jnp.asarray(np.tile([1] * 5 + [0] * 3, (batch, 1)))
    pooled = jnp.asarray(rng.standard_normal((batch, 24), np.float32))
    timesteps = jnp.asarray(rng.uniform(1, 1000, batch).astype(np.float32))
    dit = pyramid_jax.load_dit(str(SNAPSHOT_DIT))
    padded = dit(sample, text, mask, pooled, timesteps)[0]
    cut = dit(sample, text[:, :5], mask[:, :5], pooled, timesteps)[0]
    np.testing.assert_allclose(np.asarray(cut), np.asarray(padded), rtol=1e-5, atol=1e-5)


def test_a_training_run_cuts_the_null_text_the_same_way(tmp_path):
    """Text dropout swaps in `data.null_text`, which is cut to `text_tokens` like every caption (else its 8
    positions would not fit the batch's 6)."""
    annotation = write_dataset(tmp_path / "data", [(3, 8, 8, 4)] * 4, text_len=8)
    null = tmp_path / "null.npz"
    save_text(str(null), TextConditioning(np.zeros((8, 32), np.float16), np.eye(8, dtype=np.int32)[0],
                                          np.zeros(24, np.float16)))
    assert train.main(["--config", str(ROOT / "configs" / "train" / "tiny.py"), f"output_dir={tmp_path / 'run'}",
                       "data.source=latents", f"data.annotation={annotation}", f"data.null_text={null}",
                       "data.text_tokens=6", "data.read_threads=1", "step.objective.text_dropout=0.5",
                       "loop.num_steps=1", "loop.save_every=1"]) == 0
