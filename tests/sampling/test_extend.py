"""`PyramidFlowPipeline.extend` on the tiny snapshot: continuation is exact, pixel clips are encoded, bad clips are
refused before any model loads."""

import jax.numpy as jnp
import numpy as np
import pytest

from pyramid_jax.pipeline import PyramidFlowPipeline
from pyramid_jax.dit.families import normalize_latents

from conftest import FIXTURES

SNAPSHOT = str(FIXTURES / "snapshots" / "miniflux_tiny")
SIZE = dict(height=64, width=64)  # the smallest size of the tiny variant: 8x8 latents, 2x2 at stage 0
STEPS = [1, 1, 1]


@pytest.fixture(scope="module")
def pipe():
    return PyramidFlowPipeline.from_pretrained(SNAPSHOT, dtype=jnp.float32)


def generate(pipe, temp, **kwargs):
    return np.asarray(pipe.generate("a fox", **SIZE, temp=temp, num_inference_steps=STEPS,
                                    video_num_inference_steps=STEPS, guidance_scale=7.0, video_guidance_scale=5.0,
                                    seed=3, output_type="latent", **kwargs))


def test_generating_8_then_extending_by_8_equals_generating_16(pipe, tmp_path):
    whole = generate(pipe, 16)
    first = generate(pipe, 8)
    np.save(tmp_path / "first.npy", first)
    extend = lambda video: np.asarray(pipe.extend("a fox", video, temp=8, num_inference_steps=STEPS,  # noqa: E731
                                                  guidance_scale=5.0, seed=3, output_type="latent"))
    extended = extend(str(tmp_path / "first.npy"))
    assert extended.shape == whole.shape == (1, 16, 8, 8, 4)
    np.testing.assert_array_equal(extended[:, :8], first)
    # generate(temp=8) pads its histories to other program sizes than generate(temp=16) (history buckets), which
    # moves float rounding: agreement to 1e-5 of the latents' scale.
    assert np.abs(extended - whole).max() <= 1e-5 * np.abs(whole).max()
    np.testing.assert_array_equal(extend(whole[0, :8]), whole)  # from the same 8 frames: bit for bit


def test_a_pixel_clip_is_encoded_into_the_history(pipe):
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (12, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=r"video has 12 frames.*\(9 or 17\).*trim=True.*first 3"):
        pipe.extend("a fox", clip, temp=1)
    seen = []
    out = np.asarray(pipe.extend("a fox", clip, temp=1, trim=True, num_inference_steps=STEPS, output_type="latent",
                                 on_unit=lambda latents: seen.append(latents.shape[1])))
    assert out.shape == (1, 3, 8, 8, 4) and seen == [3]
    with pipe.vae.use() as vae:
        posterior = vae.encode(jnp.asarray(clip[3:], jnp.float32)[None] / 127.5 - 1)
    np.testing.assert_allclose(out[:, :2], np.asarray(normalize_latents(posterior.mode(), "pyramid_flux")),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("video,kwargs,error,match", [
    (np.zeros((9, 100, 64, 3), np.uint8), {}, ValueError, r"video frames must be positive multiples of 64"),
    (np.zeros((9, 64, 64), np.uint8), {}, ValueError, r"video must be uint8 RGB frames \[T, H, W, 3\]"),
    (np.zeros((2, 64, 64, 3), np.uint8), {}, ValueError, r"video has 2 frames.*1 \+ 8k"),
    (np.zeros((1, 2, 8, 8, 16), np.float32), {}, ValueError, "video latents have 16 channels; .* takes 4"),
    (np.zeros((2, 2, 8, 8, 4), np.float32), {}, ValueError, "video latents hold 2 videos for 1 prompt"),
    (np.zeros((2, 6, 8, 4), np.float32), {}, ValueError, r"video latents \(8x6 latent"),
    (np.full((2, 8, 8, 4), np.nan, np.float32), {}, ValueError, "video latents contain NaN"),
    (np.zeros((2, 8, 8, 4), np.int32), {}, ValueError, "got a int32 array"),
    ("no_such_clip.mp4", {}, FileNotFoundError, "video file no_such_clip.mp4 does not exist"),
    (np.zeros((2, 8, 8, 4), np.float32), dict(guidance_scale=float("nan")), ValueError,
     "guidance_scale must be a finite number"),
    (np.zeros((2, 8, 8, 4), np.float32), dict(temp=0), ValueError, "temp"),
    (np.zeros((2, 8, 8, 4), np.float32), dict(window=0), ValueError, "window"),
])
def test_bad_clips_fail_before_any_model_loads(video, kwargs, error, match):
    pipe = PyramidFlowPipeline.from_pretrained(SNAPSHOT, dtype=jnp.float32)
    with pytest.raises(error, match=match):
        pipe.extend("a fox", video, **({"temp": 2} | kwargs))
    assert pipe.text_encoder.model is None and pipe.dit.model is None and pipe.vae.model is None


def test_an_unreadable_latent_file_is_named(tmp_path):
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    pipe = PyramidFlowPipeline.from_pretrained(SNAPSHOT, dtype=jnp.float32)
    with pytest.raises(ValueError, match="broken.npy are unreadable"):
        pipe.extend("a fox", str(tmp_path / "broken.npy"))
