"""sample.py: bad arguments end with a clear message before any model loads; the default device mesh."""

import json

import pytest

import pyramid_jax.pipeline
import sample
from pyramid_jax.demo.models import SAMPLING


@pytest.fixture
def no_model_loads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    for loader in ("load_dit", "load_text_encoder", "load_vae"):
        monkeypatch.setattr(pyramid_jax.pipeline, loader, refuse)


@pytest.mark.parametrize("argv,message", [
    (["--width", "100"], "multiples of 64"),
    (["--temp", "0"], r"temp \(latent frames\) must be an integer in >= 1"),
    (["--image", "no_such_image.png"], "input image no_such_image.png does not exist"),
    (["--variant", "diffusion_transformer_768p"], "no DiT variant 'diffusion_transformer_768p'"),
    (["--snapshot", "no_such_snapshot"], "snapshot folder no_such_snapshot does not exist"),
    (["--mesh", "data=3"], "needs 3 devices"),
    (["--mesh", "model=2"], "data=2,fsdp=4"),
    (["--steps", "2,2"], "num_inference_steps"),
    (["--steps", "0"], r"num_inference_steps \(stage 0\) must be an integer in >= 1; got 0"),
    (["--video-steps", "2,0,2"], r"video_num_inference_steps \(stage 1\)"),
    (["--guidance-scale", "nan"], "--guidance-scale must be a finite number"),
    (["--video-guidance-scale", "inf"], "--video-guidance-scale must be a finite number"),
    (["--seed", str(2 ** 64)], r"--seed must be an integer in 0\.\.9223372036854775807"),
    (["--output", "clip.avi"], "unknown suffix '.avi'"),
    (["--output", ""], "--output is empty"),
    (["--save-latents", "latents.txt"], "must end with .npy"),
    (["--image", "."], "is a folder, not an image file"),
    (["--attention-backend", "splash"], r"'splash' is not available on platform 'cpu'; available: \['auto', 'xla'"),
])
def test_bad_arguments_exit_with_a_message_before_any_model_loads(no_model_loads, argv, message):
    with pytest.raises(SystemExit, match=message):
        sample.main(argv + ["--no-compile-cache"])


@pytest.fixture
def snapshot_copy(tmp_path):
    import shutil

    copy = tmp_path / "snapshot"
    shutil.copytree(sample.TINY_SNAPSHOT, copy)
    return copy


def test_a_bad_vae_config_fails_before_sampling(no_model_loads, snapshot_copy):
    config = snapshot_copy / "causal_video_vae" / "config.json"
    config.write_text(config.read_text()[:-10])
    with pytest.raises(SystemExit, match=r"causal_video_vae/config.json: not valid JSON \(.* at line"):
        sample.main(["--snapshot", str(snapshot_copy), "--no-compile-cache"])
    config.write_text('{"_class_name": "CausalVideoVAE", "encoder_out_channels": "four"}')
    with pytest.raises(SystemExit, match=r"config.json: VAEConfig.encoder_out_channels must be int; got 'four'"):
        sample.main(["--snapshot", str(snapshot_copy), "--no-compile-cache"])


def test_a_pickled_vae_needs_allow_pickle_which_sample_accepts(no_model_loads, snapshot_copy):
    import torch
    from safetensors.numpy import load_file

    vae = snapshot_copy / "causal_video_vae"  # the released layout: the VAE as a pickled .bin
    tensors = load_file(str(vae / "diffusion_pytorch_model.safetensors"))
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, vae / "diffusion_pytorch_model.bin")
    (vae / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(SystemExit, match="--allow-pickle"):
        sample.main(["--snapshot", str(snapshot_copy), "--no-compile-cache"])
    with pytest.raises(AssertionError, match="a model was loaded"):  # past every check, to the first model load
        sample.main(["--snapshot", str(snapshot_copy), "--no-compile-cache", "--allow-pickle"])


def test_usage_errors_exit_2_and_debug_shows_the_traceback(no_model_loads, capsys):
    from pyramid_jax.errors import ArgumentError

    with pytest.raises(SystemExit) as exit:
        sample.main(["--steps", "0", "--no-compile-cache"])
    assert exit.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: num_inference_steps")
    with pytest.raises(ArgumentError):
        sample.main(["--steps", "0", "--no-compile-cache", "--debug"])


def test_default_mesh_splits_guidance_rows_over_data_and_the_rest_over_fsdp():
    assert sample.default_mesh_axes(rows=2, devices=8) == dict(data=2, fsdp=4)
    assert sample.default_mesh_axes(rows=8, devices=4) == dict(data=4, fsdp=1)
    assert sample.default_mesh_axes(rows=6, devices=8) == dict(data=2, fsdp=4)
    assert sample.default_mesh_axes(rows=1, devices=1) == dict(data=1, fsdp=1)


def test_input_image_is_resized_to_cover_then_centre_cropped(tmp_path):
    from PIL import Image
    import numpy as np

    # 400x100 image: left half red, right half blue, a green 20-px column in the exact centre.
    pixels = np.zeros((100, 400, 3), np.uint8)
    pixels[:, :200, 0] = 255
    pixels[:, 200:, 2] = 255
    pixels[:, 190:210] = (0, 255, 0)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    image = np.asarray(sample.load_image(str(tmp_path / "wide.png"), width=64, height=64))
    assert image.shape == (64, 64, 3)  # scaled by 0.64 to 256x64, then the central 64 columns kept
    assert image[:, 0, 0].min() > 200 and image[:, -1, 2].min() > 200  # red at the left edge, blue at the right
    green = np.flatnonzero(image[32, :, 1] > 200)
    assert 10 <= len(green) <= 15 and abs(green.mean() - 31.5) < 1.5  # 20 px x 0.64, centred: cropped, not squashed


def test_default_snapshot_is_the_committed_demo_and_flags_win():
    args = sample.parse_args([])
    sample.fill_defaults(args)
    assert args.snapshot == sample.DEMO_SNAPSHOT
    assert (args.width, args.height, args.temp, args.negative_prompt) == (64, 64, 2, "")
    args = sample.parse_args(["--width", "128", "--negative-prompt", "blurry"])
    sample.fill_defaults(args)
    assert (args.width, args.height, args.negative_prompt) == (128, 64, "blurry")  # flags win over the defaults


def test_prompt_words_outside_the_demo_vocabulary_warn_or_fail(no_model_loads, capsys):
    prompt = ["--prompt", "a magenta star bouncing diagonally, the red circle"]
    with pytest.raises(SystemExit, match=r"--prompt: 'magenta', 'star', 'bouncing', 'diagonally' not in the "
                                         r"vocabulary of .*shapes_demo .*know only: 8k a blue circle"):
        sample.main([*prompt, "--strict-vocab", "--no-compile-cache"])
    capsys.readouterr()
    args = sample.parse_args([*prompt, "--negative-prompt", "Blurry"])
    sample.fill_defaults(args)
    sample.check_vocabulary(args)
    assert capsys.readouterr().err.startswith(
        "warning: 'magenta', 'star', 'bouncing', 'diagonally', 'blurry' not in the vocabulary of ")


def test_known_words_and_subword_snapshots_pass_the_vocabulary_check(capsys):
    for argv in (["--prompt", "One CYAN triangle slides up, hyper quality, Ultra HD, 8K", "--strict-vocab"],
                 ["--snapshot", sample.TINY_SNAPSHOT, "--prompt", "a magenta star", "--strict-vocab"]):
        args = sample.parse_args(argv)
        sample.fill_defaults(args)
        sample.check_vocabulary(args)
    assert capsys.readouterr().err == ""


def test_defaults_come_from_the_snapshot_not_its_path(snapshot_copy):
    """A copy of the tiny snapshot keeps its sampling.json defaults; the pipeline's native size and max temp too."""
    args = sample.parse_args(["--snapshot", str(snapshot_copy)])
    sample.fill_defaults(args)
    assert (args.width, args.height, args.temp, args.steps, args.video_steps) == (192, 128, 3, [2, 2, 2], [2, 2, 2])
    pipe = pyramid_jax.pipeline.PyramidFlowPipeline.from_pretrained(str(snapshot_copy))
    assert (pipe.preset.width, pipe.preset.height, pipe.preset.max_temp) == (192, 128, 3)
    args = sample.parse_args([])  # the demo: its own defaults
    sample.fill_defaults(args)
    assert (args.width, args.temp, args.guidance_scale, args.prompt) == (64, 2, SAMPLING["guidance_scale"],
                                                                     ["the red circle is moving right"])
    (snapshot_copy / "diffusion_transformer_384p" / "sampling.json").write_text('{"width": "wide"}')
    with pytest.raises(SystemExit, match=r"sampling.json: width must be int; got 'wide'"):
        sample.main(["--snapshot", str(snapshot_copy), "--no-compile-cache"])


def test_a_vae_that_does_not_fit_its_config_fails_before_sampling(no_model_loads, snapshot_copy):
    config = snapshot_copy / "causal_video_vae" / "config.json"
    values = json.loads(config.read_text())
    wider = 2 * values["encoder_out_channels"]  # a config edited after the weights were made
    config.write_text(json.dumps({**values, "encoder_out_channels": wider, "decoder_in_channels": wider}))
    with pytest.raises(SystemExit, match=r"causal_video_vae: checkpoint does not match the CausalVideoVAE model:"
                                         r"\n  7 mis-shaped"):
        sample.main(["--snapshot", str(snapshot_copy), "--no-compile-cache"])
