"""`PyramidFlowPipeline` on the tiny snapshot: i2v end to end, text rows, decoding, seeds, argument checks."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pyramid_jax.pipeline import PyramidFlowPipeline

from conftest import FIXTURES, ncthw_to_cl
from replay import MAX_REL, load_run

SNAPSHOT = str(FIXTURES / "snapshots" / "miniflux_tiny")


@pytest.fixture(scope="module")
def pipe():
    return PyramidFlowPipeline.from_pretrained(SNAPSHOT, dtype=jnp.float32)


def test_i2v_matches_the_reference(pipe):
    """Text encoding, VAE encoding of the image with the recorded posterior noise, then the sampler."""
    npz, call, _, noise = load_run("i2v")
    latents = pipe.generate_i2v(call["prompt"], npz["input_image_uint8"], temp=call["temp"],
                                num_inference_steps=call["num_inference_steps"], guidance_scale=call["guidance_scale"],
                                video_guidance_scale=call["video_guidance_scale"], output_type="latent", noise=noise,
                                posterior_noise=jnp.asarray(ncthw_to_cl(npz["rng/001_vae_posterior_noise"])))
    ref = ncthw_to_cl(npz["output_latents"])
    np.testing.assert_array_less(np.abs(np.asarray(latents) - ref).max(), MAX_REL * np.abs(ref).max())


def test_t2v_text_rows_and_decoded_frames_match_the_reference(pipe):
    npz, call, text, _ = load_run("t2v")
    ours = pipe.encode_prompt([call["prompt"]], "cartoon style, worst quality, low quality, blurry, absolute black, "
                              "absolute white, low res, extra limbs, extra digits, misplaced objects, mutated "
                              "anatomy, monochrome, horror", 1, guided=True)
    for got, want in zip(ours, text):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
    # Frame 0 decodes from latent frame 0 alone (causal VAE, one latent frame per chunk); the shorter clip halves
    # the VAE's compile time.
    frames = pipe.decode_latent(jnp.asarray(ncthw_to_cl(npz["output_latents"][:, :, :1])), save_memory=True)
    ref = npz["decode_latent/frames_uint8"][:1]
    assert frames.shape == (1, *ref.shape) and frames.dtype == np.uint8
    diff = np.abs(frames[0].astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float error moves a few truncated levels by one


def test_prompt_batches_give_cfg_rows(pipe):
    text = pipe.encode_prompt(["a", "b"], "neg", 2, guided=True)
    assert text.embeds.shape[0] == 8  # [neg x 4; a, a, b, b]
    e = np.asarray(text.embeds)
    np.testing.assert_array_equal(e[0], e[3])
    np.testing.assert_array_equal(e[4], e[5])
    assert not np.array_equal(e[5], e[6]) and not np.array_equal(e[0], e[4])
    assert pipe.encode_prompt(["a"], None, 1, guided=False).embeds.shape[0] == 1


def test_seeded_generation_is_reproducible_also_with_save_memory(pipe):
    lean = PyramidFlowPipeline.from_pretrained(SNAPSHOT, dtype=jnp.float32, save_memory=True)
    run = lambda seed, p=pipe: np.asarray(p.generate("a fox", 128, 192, temp=2, num_inference_steps=2,
                                                     video_num_inference_steps=2, seed=seed, output_type="latent"))
    a = run(0)
    assert a.shape == (1, 2, 16, 24, 4)
    np.testing.assert_array_equal(a, run(0))
    assert not np.allclose(a, run(1))
    np.testing.assert_array_equal(a, run(0, lean))
    assert lean.text_encoder.model is None and lean.dit.model is None  # released after use


@pytest.mark.parametrize("kwargs,match", [
    (dict(height=100), "multiples of 64"),
    (dict(temp=0), "temp"),
    (dict(window=0), "window"),
    (dict(guidance_scale=float("nan")), "guidance_scale must be a finite number"),
    (dict(num_inference_steps=[2, 2]), "num_inference_steps"),
    (dict(output_type="gif"), "output_type"),
    (dict(negative_prompt=["x", "y"]), "negative prompts"),
    (dict(prompt=[]), "prompt"),
])
def test_bad_arguments_fail_before_any_model_loads(kwargs, match):
    pipe = PyramidFlowPipeline.from_pretrained(SNAPSHOT, dtype=jnp.float32)
    args = dict(prompt="a fox", height=128, width=192, temp=2) | kwargs
    with pytest.raises(ValueError, match=match):
        pipe.generate(**args)
    assert pipe.text_encoder.model is None and pipe.dit.model is None and pipe.vae.model is None


def test_bad_i2v_inputs_and_snapshots_are_refused():
    pipe = PyramidFlowPipeline.from_pretrained(SNAPSHOT, dtype=jnp.float32)
    with pytest.raises(ValueError, match="needs an input_image"):
        pipe.generate_i2v("a fox", None, temp=2)
    with pytest.raises(ValueError, match="multiples of 64"):
        pipe.generate_i2v("a fox", np.zeros((120, 192, 3), np.uint8), temp=2)
    with pytest.raises(FileNotFoundError, match=r"no DiT variant 'diffusion_transformer_768p'.*384p"):
        PyramidFlowPipeline.from_pretrained(SNAPSHOT, variant="diffusion_transformer_768p")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PyramidFlowPipeline.from_pretrained(SNAPSHOT + "_missing")


def test_attention_backend_override():
    pipe = PyramidFlowPipeline.from_pretrained(SNAPSHOT, dtype=jnp.float32, attention_backend="blockwise")
    with pipe.dit.use() as dit:
        assert {node.backend for _, node in nnx.iter_graph(dit) if hasattr(node, "backend")} == {"blockwise"}
    with pytest.raises(ValueError, match=r"attention backend 'magic' is unknown; available: \['auto', 'xla'"):
        PyramidFlowPipeline.from_pretrained(SNAPSHOT, attention_backend="magic")
