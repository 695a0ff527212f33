"""Training configs: every configs/train file loads; dotted command-line overrides are typed and strict."""

import pathlib
import shutil

import jax
import numpy as np
import pytest
from flax import nnx

import pyramid_jax
import train
from pyramid_jax.config import ConfigError
from pyramid_jax.dit_training.config import TrainConfig
from pyramid_jax.training.checkpoint import TrainCheckpointer
from pyramid_jax.training.config import apply_overrides, load_train_config
from pyramid_jax.training.optimizer import gradient_transform
from pyramid_jax.training.train_state import init_train_state, split_for_training
from pyramid_jax.vae_training.config import VAETrainConfig

TRAIN_CONFIGS = sorted((pathlib.Path(__file__).parents[2] / "configs" / "train").glob("*.py"))
TINY = str(TRAIN_CONFIGS[0].parent / "tiny.py")


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.stem)
def test_train_configs_load(path):
    config = load_train_config(str(path))
    assert isinstance(config, VAETrainConfig if "_vae" in path.stem else TrainConfig)


def test_overrides_are_typed():
    config = apply_overrides(load_train_config(TINY), [
        "loop.num_steps=7", "step.optimizer.learning_rate=2e-4", "step.optimizer.warmup_steps=0",
        "step.objective.sample_ratios=1,1,2", "remat_policy=dots", "scan_layers=true", "loop.temporal_pyramid=false",
        "ema=True", "mesh.fsdp=4", "output_dir=/tmp/x", "variant=diffusion_transformer_768p", "step.max_loss=3"])
    assert config.loop.num_steps == 7 and config.step.optimizer.learning_rate == 2e-4
    assert config.step.objective.sample_ratios == (1, 1, 2) and config.remat_policy == "dots" and config.scan_layers is True
    assert config.loop.temporal_pyramid is False and config.mesh.fsdp == 4 and config.output_dir == "/tmp/x"
    assert config.step.max_loss == 3.0 and isinstance(config.step.max_loss, float)


def test_lora_overrides():
    config = apply_overrides(load_train_config(TINY), ["lora.rank=16", "lora.targets=mlp", "lora.alpha=8"])
    assert config.lora.enabled and config.lora.targets == "mlp" and config.lora.scale == 0.5
    assert not load_train_config(TINY).lora.enabled
    with pytest.raises(ConfigError, match="unknown lora.targets 'ffn'"):
        apply_overrides(load_train_config(TINY), ["lora.rank=4", "lora.targets=ffn"])
    assert apply_overrides(load_train_config(TINY), ["lora.rank=4", "lora.targets=all,text"]).lora.targets == "all,text"
    with pytest.raises(ConfigError, match="unknown lora.targets 'embed' in 'attn,embed'"):
        apply_overrides(load_train_config(TINY), ["lora.rank=4", "lora.targets=attn,embed"])
    with pytest.raises(ConfigError, match="lora.base_dtype"):
        apply_overrides(load_train_config(TINY), ["lora.base_dtype=float16"])


@pytest.mark.parametrize("override, message", [
    ("loop.num_stepz=3", "unknown config key 'loop.num_stepz'"),
    ("step.optimizer.lr=1", "unknown config key 'step.optimizer.lr'"),
    ("loop.num_steps=abc", "expected int"),
    ("remat_policy=everything", "unknown remat_policy"),
    ("step.optimizer=1", "is a group"),
    ("loop.num_steps.x=1", "not a group"),
    ("loop.num_steps", "key=value"),
])
def test_bad_overrides_are_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(load_train_config(TINY), [override])


def test_train_script_rejects_an_unknown_key_before_loading_anything():
    with pytest.raises(SystemExit, match="unknown config key 'data.bogus'"):
        train.main(["--config", TINY, "data.bogus=1"])


def test_train_script_trains_a_dit_from_scratch_and_exports_the_ema_weights(tmp_path):
    snapshot = pathlib.Path(TINY).parents[2] / "tests" / "fixtures" / "snapshots" / "miniflux_tiny"
    for name in ("tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2"):
        shutil.copytree(snapshot / name, tmp_path / "init" / name)
    dit = tmp_path / "init" / "diffusion_transformer_384p"  # config.json only: no weights to load
    dit.mkdir()
    shutil.copy(snapshot / "diffusion_transformer_384p" / "config.json", dit)
    run = tmp_path / "run"
    assert train.main(["--config", TINY, f"snapshot={tmp_path / 'init'}", "from_scratch=true", f"output_dir={run}",
                       "loop.num_steps=2", "loop.save_every=2", "step.ema_every=1"]) == 0
    exported = pyramid_jax.load_dit(str(run / "model"))
    released = pyramid_jax.load_dit(str(snapshot / "diffusion_transformer_384p"))
    assert exported.config == released.config
    ema = nnx.to_flat_state(nnx.state(exported, nnx.Param))
    checkpointer = TrainCheckpointer(str(run / "checkpoints"))
    _, params, buffers = split_for_training(exported)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                          init_train_state(params, buffers, gradient_transform(load_train_config(TINY).step.optimizer)))
    state, _ = checkpointer.restore(target)
    for (path, got), (_, want) in zip(ema, nnx.to_flat_state(state.ema)):
        np.testing.assert_array_equal(np.asarray(got.get_value()), np.asarray(want.get_value()), err_msg=str(path))
    released_kernel = np.asarray(released.proj_out.kernel[...])
    assert not np.array_equal(np.asarray(exported.proj_out.kernel[...]), released_kernel)  # not the snapshot's weights


@pytest.mark.parametrize("override, message", [
    ("loop.num_steps=-5", "'loop.num_steps' must be at least 0; got -5"),
    ("data.batch_size=0", "'data.batch_size' must be at least 1"),
    ("loop.save_every=0", "'loop.save_every' must be at least 1"),
    ("loop.seed=-1", "'loop.seed' must be at least 0 and at most"),
])
def test_out_of_range_values_are_errors_before_any_work(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(load_train_config(TINY), [override])
    with pytest.raises(SystemExit, match=message):
        train.main(["--config", TINY, override])


def test_a_nan_in_a_config_file_is_an_error():
    import dataclasses

    from pyramid_jax.training.config import check_values

    config = load_train_config(TINY)
    bad = dataclasses.replace(config, step=dataclasses.replace(config.step, max_loss=float("nan")))
    with pytest.raises(ConfigError, match="'step.max_loss' is NaN"):
        check_values(bad)


@pytest.mark.parametrize("body, message", [
    ("def get_config(:\n", "SyntaxError"),
    ("x = 1\n", "AttributeError: .*get_config"),
    ("def get_config():\n    return 1 / 0\n", "ZeroDivisionError"),
])
def test_a_broken_config_file_is_named(tmp_path, body, message):
    path = tmp_path / "broken.py"
    path.write_text(body)
    with pytest.raises(SystemExit, match=f"error: {path}: {message}"):
        train.main(["--config", str(path)])
