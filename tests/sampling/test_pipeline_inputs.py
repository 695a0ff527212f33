"""The Python API refuses wrong types, NaN/inf scales, 0 steps and bad seeds before any model loads, and a sampling
run whose latents turn non-finite stops naming the unit instead of returning NaN video."""

import jax.numpy as jnp
import numpy as np
import pytest

from pyramid_jax.errors import ArgumentError, NonFiniteError
from pyramid_jax.pipeline import PyramidFlowPipeline

from conftest import FIXTURES

SNAPSHOT = str(FIXTURES / "snapshots" / "miniflux_tiny")


@pytest.fixture(scope="module")
def pipe():
    return PyramidFlowPipeline.from_pretrained(SNAPSHOT, dtype=jnp.float32)


@pytest.mark.parametrize("kwargs,match", [
    (dict(height=128.0), "height must be an integer; got 128.0 .float."),
    (dict(temp=True), "temp .latent frames. must be an integer"),
    (dict(prompt=5), "prompt must be a string"),
    (dict(negative_prompt=7), "negative_prompt must be a string"),
    (dict(guidance_scale="4"), "guidance_scale must be a number; got '4'"),
    (dict(guidance_scale=float("inf")), "guidance_scale must be a finite number"),
    (dict(guidance_scale=float("nan")), "guidance_scale must be a finite number"),
    (dict(video_guidance_scale=float("nan")), "video_guidance_scale must be a finite number"),
    (dict(num_inference_steps=0), "num_inference_steps .stage 0. must be an integer in >= 1; got 0"),
    (dict(video_num_inference_steps=[2, 0, 2]), r"video_num_inference_steps \(stage 1\)"),
    (dict(seed=1.5), "seed must be an integer"),
    (dict(seed=2 ** 64), r"seed must be an integer in 0\.\.9223372036854775807"),
    (dict(seed=-1), "seed must be an integer in"),
    (dict(num_images_per_prompt=0), "num_images_per_prompt"),
])
def test_bad_arguments_name_themselves_before_any_model_loads(pipe, kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        pipe.generate(**(dict(prompt="a fox", height=128, width=192, temp=2) | kwargs))
    assert pipe.text_encoder.model is None and pipe.dit.model is None and pipe.vae.model is None


def test_i2v_checks_its_arguments_too(pipe):
    image = np.zeros((128, 192, 3), np.uint8)
    for kwargs, match in ((dict(seed=2 ** 63), "seed"), (dict(guidance_scale=float("nan")), "guidance_scale"),
                          (dict(temp=1.0), "temp")):
        with pytest.raises(ArgumentError, match=match):
            pipe.generate_i2v("a fox", image, **(dict(temp=2) | kwargs))


def test_seeds_past_2_to_the_32_give_their_own_video(pipe):
    run = lambda seed: np.asarray(pipe.generate("a fox", 128, 192, temp=1, num_inference_steps=1,  # noqa: E731
                                                seed=seed, output_type="latent"))
    assert not np.array_equal(run(0), run(2 ** 32))


def test_latents_that_turn_non_finite_stop_the_run_naming_the_unit(pipe):
    with pytest.raises(NonFiniteError, match="unit 0 .latent frame 0. are NaN or infinite"):
        pipe.generate("a fox", 128, 192, temp=1, num_inference_steps=1, guidance_scale=3e38, output_type="latent")
