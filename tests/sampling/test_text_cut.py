"""The sampler cuts the text's trailing padding to a few bucketed lengths: the same video, a shorter sequence."""

import jax.numpy as jnp
import numpy as np
import pytest

import pyramid_jax.sampling.sampler as sampler_module
from pyramid_jax.errors import ArgumentError
from pyramid_jax.pipeline import PyramidFlowPipeline
from pyramid_jax.sampling.sampler import PyramidSampler
from pyramid_jax.text.conditioning import TextConditioning, cut_text, text_bucket, text_length
from pyramid_jax.training.data.errors import DataError
from pyramid_jax.training.data.readers import trim_text

from conftest import FIXTURES


def rows(*lengths, width=128):
    """A mask with one row per length: that many tokens, then padding."""
    return np.asarray([[1] * n + [0] * (width - n) for n in lengths], np.int32)


def conditioning(mask, dim=4):
    rng = np.random.default_rng(0)
    return TextConditioning(rng.standard_normal((*mask.shape, dim)).astype(np.float32), mask,
                            rng.standard_normal((*mask.shape[:-1], 3)).astype(np.float32))


def test_the_longest_row_decides_the_bucket_negative_rows_included():
    assert text_bucket(rows(40, 5)) == text_bucket(rows(5, 40)) == 64  # [negative; positive] either way round
    assert text_bucket(rows(16, 1)) == 16 and text_bucket(rows(17, 1)) == 32 and text_bucket(rows(0, 0)) == 16
    assert text_bucket(rows(128, 3)) == 128 and text_bucket(rows(70, width=77)) == 77  # never past the encoder's L
    mask = rows(3, 2)
    mask[1, 50] = 1  # a token after padding still counts
    assert text_length(mask) == 51 and text_bucket(mask) == 64
    buckets = set()
    for used in range(129):
        bucket = text_bucket(rows(used, used // 2))
        buckets.add(bucket)
        assert bucket >= used
        cut_text(conditioning(rows(used, used // 2)), bucket)  # never cuts a token
    assert buckets == {16, 32, 64, 128}


def test_cut_text_takes_one_caption_or_rows_and_refuses_a_bad_length():
    batch = conditioning(rows(6, 3, width=8))
    cut = cut_text(batch, 6)
    assert cut.embeds.shape == (2, 6, 4) and cut.mask.shape == (2, 6) and cut.pooled is batch.pooled
    np.testing.assert_array_equal(cut.embeds, batch.embeds[:, :6])
    caption = TextConditioning(batch.embeds[1], batch.mask[1], batch.pooled[1])
    assert cut_text(caption, 3).embeds.shape == (3, 4) and cut_text(caption, 3).mask.shape == (3,)
    with pytest.raises(ArgumentError, match="6 text positions, more than length=5"):
        cut_text(batch, 5)
    for bad in (0, 9, 2.0, True):
        with pytest.raises(ArgumentError, match="length must be an integer"):
            cut_text(batch, bad)
    with pytest.raises(DataError, match="caption.npz: data.text_tokens must be an integer in 1..8; got 9"):
        trim_text(caption, 9, "caption.npz")  # training's data.text_tokens goes through the same cut


@pytest.mark.parametrize("snapshot", ["miniflux_tiny", "sd3_tiny"])
def test_generation_with_the_cut_text_equals_the_whole_128_positions(snapshot, monkeypatch):
    """fp32: the cut run agrees with the 128-position one to 1e-5 of the latents' scale (the attention sums fewer
    zeros in another order, and guidance scales that rounding by 7), and the sampler's units get the cut text."""
    pipe = PyramidFlowPipeline.from_pretrained(str(FIXTURES / "snapshots" / snapshot), dtype=jnp.float32)
    lengths, run = [], PyramidSampler._run

    def recording_run(self, program):
        lengths.append(program.inputs[2].embeds.shape[1])  # (history, noise, text, ...)
        return run(self, program)

    monkeypatch.setattr(PyramidSampler, "_run", recording_run)
    generate = lambda: np.asarray(pipe.generate(  # noqa: E731
        "a fox", 64, 64, temp=2, num_inference_steps=[1, 1, 1], video_num_inference_steps=[1, 1, 1],
        negative_prompt="blurry", seed=1, output_type="latent"))
    cut = generate()
    bucket = text_bucket(pipe.encode_prompt(["a fox"], "blurry").mask)
    assert bucket < 128 and lengths == [bucket, bucket]
    monkeypatch.setattr(sampler_module, "text_bucket", lambda mask: mask.shape[-1])  # the uncut path
    whole = generate()
    assert lengths[2:] == [128, 128]
    assert np.abs(cut - whole).max() <= 1e-5 * np.abs(whole).max()
