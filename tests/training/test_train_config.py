"""Training configs: every configs/train file loads; dotted command-line overrides are typed and strict."""

import pathlib

import pytest

import train
from pyramid_jax.config import ConfigError
from pyramid_jax.training.config import TrainConfig, apply_overrides, load_train_config

TRAIN_CONFIGS = sorted((pathlib.Path(__file__).parents[2] / "configs" / "train").glob("*.py"))
TINY = str(TRAIN_CONFIGS[0].parent / "tiny.py")


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.stem)
def test_train_configs_load(path):
    assert isinstance(load_train_config(str(path)), TrainConfig)


def test_overrides_are_typed():
    config = apply_overrides(load_train_config(TINY), [
        "loop.num_steps=7", "step.optimizer.learning_rate=2e-4", "step.optimizer.warmup_steps=0",
        "step.objective.sample_ratios=1,1,2", "remat=dots", "scan_layers=true", "loop.temporal_pyramid=false",
        "ema=True", "mesh.fsdp=4", "output_dir=/tmp/x", "variant=diffusion_transformer_768p", "step.max_loss=3"])
    assert config.loop.num_steps == 7 and config.step.optimizer.learning_rate == 2e-4
    assert config.step.objective.sample_ratios == (1, 1, 2) and config.remat == "dots" and config.scan_layers is True
    assert config.loop.temporal_pyramid is False and config.mesh.fsdp == 4 and config.output_dir == "/tmp/x"
    assert config.step.max_loss == 3.0 and isinstance(config.step.max_loss, float)


@pytest.mark.parametrize("override, message", [
    ("loop.num_stepz=3", "unknown config key 'loop.num_stepz'"),
    ("step.optimizer.lr=1", "unknown config key 'step.optimizer.lr'"),
    ("loop.num_steps=abc", "expected int"),
    ("remat=everything", "unknown remat"),
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
