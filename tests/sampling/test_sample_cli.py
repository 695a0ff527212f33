"""sample.py: bad arguments end with a clear message before any model loads; the default device mesh."""

import pytest

import pyramid_jax.pipeline
import sample


@pytest.fixture
def no_model_loads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    for loader in ("load_dit", "load_text_encoder", "load_vae"):
        monkeypatch.setattr(pyramid_jax.pipeline, loader, refuse)


@pytest.mark.parametrize("argv,message", [
    (["--width", "100"], "multiples of 64"),
    (["--temp", "17"], r"1\.\.16 for diffusion_transformer_384p"),
    (["--image", "no_such_image.png"], "input image no_such_image.png does not exist"),
    (["--variant", "diffusion_transformer_768p"], "no DiT variant 'diffusion_transformer_768p'"),
    (["--snapshot", "no_such_snapshot"], "snapshot folder no_such_snapshot does not exist"),
    (["--mesh", "data=3"], "needs 3 devices"),
    (["--mesh", "model=2"], "data=2,fsdp=4"),
    (["--steps", "2,2"], "num_inference_steps"),
])
def test_bad_arguments_exit_with_a_message_before_any_model_loads(no_model_loads, argv, message):
    with pytest.raises(SystemExit, match=message):
        sample.main(argv + ["--no-compile-cache"])


def test_default_mesh_splits_guidance_rows_over_data_and_the_rest_over_fsdp():
    assert sample.default_mesh_axes(rows=2, devices=8) == dict(data=2, fsdp=4)
    assert sample.default_mesh_axes(rows=8, devices=4) == dict(data=4, fsdp=1)
    assert sample.default_mesh_axes(rows=6, devices=8) == dict(data=2, fsdp=4)
    assert sample.default_mesh_axes(rows=1, devices=1) == dict(data=1, fsdp=1)
