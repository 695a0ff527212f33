"""The converter and converted folders fail clearly, naming the file and field: non-float or non-finite weights,
truncated or garbage safetensors, bad config.json values, a converted folder that does not fit its config; and
`--overwrite --components X` replaces only X."""

import json
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import convert_torch_weights
import pyramid_jax

from conftest import FIXTURES

SNAPSHOT = FIXTURES / "snapshots" / "miniflux_tiny"
DIT = "diffusion_transformer_384p"
WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture
def dit_copy(tmp_path):
    src = tmp_path / "snapshot"
    shutil.copytree(SNAPSHOT / DIT, src / DIT)
    return src


def convert(src, dst, *extra):
    return convert_torch_weights.main(["--src", str(src), "--dst", str(dst), "--components", "dit", *extra])


def edit_weights(src, change):
    path = src / DIT / WEIGHTS
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def test_integer_weights_are_refused(dit_copy, tmp_path):
    edit_weights(dit_copy, lambda t: t.update({"proj_out.bias": t["proj_out.bias"].astype(np.int32)}))
    with pytest.raises(SystemExit, match=f"{DIT}: weight 'proj_out.bias' is int32, not floating point"):
        convert(dit_copy, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_finite_weights_are_reported_unless_allowed(dit_copy, tmp_path):
    def poison(t):
        t["proj_out.bias"][:2] = [np.nan, np.inf]

    edit_weights(dit_copy, poison)
    with pytest.raises(SystemExit, match=r"'proj_out.bias' \[\d+\] holds 2 NaN or infinite value\(s\); pass "
                                         "--allow-nonfinite"):
        convert(dit_copy, tmp_path / "out")
    assert convert(dit_copy, tmp_path / "out", "--allow-nonfinite") == 0


@pytest.mark.parametrize("damage,message", [
    (lambda data: data[:len(data) // 2], "is truncated: tensor"),
    (lambda data: b"\xff" * 100, "is not a safetensors file, or is truncated"),
    (lambda data: (20).to_bytes(8, "little") + b"not json at all....." + data[28:], "is not a safetensors file: its header is not JSON"),
])
def test_truncated_or_garbage_safetensors_name_the_file(dit_copy, tmp_path, damage, message):
    path = dit_copy / DIT / WEIGHTS
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(SystemExit, match=f"{WEIGHTS} {message}"):
        convert(dit_copy, tmp_path / "out")


@pytest.mark.parametrize("change,message", [
    (lambda text: text[:-5], r"config.json: not valid JSON \(.* at line \d+, column \d+\)"),
    (lambda text: text.replace('"num_layers": 2', '"num_layers": "two"'),
     r"config.json: FluxConfig.num_layers must be int; got 'two' \(str\)"),
    (lambda text: text.replace('"num_layers": 2,', ''), r"config.json: missing field\(s\) \['num_layers'\]"),
])
def test_bad_config_json_names_the_file_and_field(dit_copy, tmp_path, change, message):
    config = dit_copy / DIT / "config.json"
    config.write_text(change(config.read_text()))
    with pytest.raises(SystemExit, match=message):
        convert(dit_copy, tmp_path / "out")


def test_overwrite_replaces_only_the_components_given(tmp_path):
    out = tmp_path / "out"
    assert convert_torch_weights.main(["--src", str(SNAPSHOT), "--dst", str(out), "--components", "dit,vae"]) == 0
    vae_before = sorted(os.listdir(out / "causal_video_vae"))
    (out / "notes.txt").write_text("mine")
    assert convert(SNAPSHOT, out, "--overwrite") == 0
    assert sorted(os.listdir(out)) == ["causal_video_vae", DIT, "notes.txt"]
    assert sorted(os.listdir(out / "causal_video_vae")) == vae_before and (out / "notes.txt").read_text() == "mine"
    pyramid_jax.load_vae(str(out / "causal_video_vae"))


def test_a_converted_folder_that_does_not_fit_its_config_names_the_parameter(tmp_path):
    out = tmp_path / "out"
    assert convert(SNAPSHOT, out) == 0
    config_path = out / DIT / "config.json"
    config = json.loads(config_path.read_text())
    json.dump({**config, "num_layers": 1, "joint_attention_dim": 16}, config_path.open("w"))
    with pytest.raises(ValueError) as error:
        pyramid_jax.load_dit(str(out / DIT))
    text = str(error.value)
    assert f"{out / DIT / 'params'} does not match {config_path}" in text
    assert "context_embedder/kernel: stored [32, 64], config wants [16, 64]" in text
    assert "transformer_blocks/1/" in text and "in the checkpoint, not in the model" in text
    assert len(text) < 3000


def test_a_converted_dit_keeps_its_sampling_defaults(dit_copy, tmp_path):
    assert convert(dit_copy, tmp_path / "out") == 0
    assert json.loads((tmp_path / "out" / DIT / "sampling.json").read_text()) == json.loads(
        (SNAPSHOT / DIT / "sampling.json").read_text())


def test_a_damaged_converted_folder_is_named_not_a_tensorstore_trace(tmp_path):
    out = tmp_path / "out"
    assert convert(SNAPSHOT, out) == 0
    params = out / DIT / "params"
    for shard in params.glob("**/d/*"):  # the array data lost (a deleted or never-written shard)
        shard.unlink()
    with pytest.raises(ValueError, match=f"{params} (cannot be read|holds no parameters) .damaged or incomplete"):
        pyramid_jax.load_dit(str(out / DIT))
    shutil.rmtree(params)
    (params).mkdir()
    with pytest.raises(ValueError, match=f"{params} (is not a readable converted checkpoint|holds no parameters)"):
        pyramid_jax.load_dit(str(out / DIT))
