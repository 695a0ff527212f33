"""LoRA folders: a merged DiT (tools/merge_lora.py) matches the DiT with the adapters as separate low-rank paths
to 1e-5, the pipeline applies folders with a scale, and every bad LoRA input is refused by name before any model
loads."""

import json
import math
import os
import pathlib
import shutil
import sys

import jax
import numpy as np
import pytest
from flax import nnx

import pyramid_jax
from pyramid_jax.dit.load import read_dit_config
from pyramid_jax.lora import LoraConfig, LoraError, check_lora, init_adapters, merge_loras, save_lora
from pyramid_jax.lora.adapters import A, B
from pyramid_jax.lora.files import check_loras
from pyramid_jax.pipeline import PyramidFlowPipeline
from tools import merge_lora

from conftest import FIXTURES

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "dit"))
from flux_cases import load_case  # noqa: E402

DIT = FIXTURES / "dit_flux" / "model"
SNAPSHOT = FIXTURES / "snapshots" / "miniflux_tiny"
LORA = LoraConfig(rank=3, alpha=6.0, targets="all")  # scale 2


def trained_adapters(model, config=LORA, seed=0):
    """Adapters with B random too, as after training (fresh ones have B = 0)."""
    adapters = init_adapters(nnx.state(model, nnx.Param), config, jax.random.key(seed))
    flat = nnx.to_flat_state(adapters)
    keys = jax.random.split(jax.random.key(seed + 1), len(flat))
    return nnx.from_flat_state([(p, v.replace(0.2 * jax.random.normal(k, v.get_value().shape)) if p[-1] == B else v)
                                for (p, v), k in zip(flat, keys)])


def with_lora_paths(model, adapters, scale):
    """`model` with each adapted `nnx.Linear` wrapped in flax's own `nnx.LoRA` (x W + (x A) B as two paths)."""
    flat = dict(nnx.to_flat_state(adapters))
    for path, var in flat.items():
        if path[-1] != A:
            continue
        parent = model
        for p in path[:-2]:
            parent = parent[p] if isinstance(p, int) else getattr(parent, p)
        base = getattr(parent, path[-2])
        lora = nnx.LoRA(*var.get_value().shape, base.kernel.shape[1], base_module=base, rngs=nnx.Rngs(0))
        lora.lora_a.set_value(var.get_value())
        lora.lora_b.set_value(scale * flat[path[:-1] + (B,)].get_value())
        setattr(parent, path[-2], lora)
    return model


@pytest.fixture(scope="module")
def lora_folder(tmp_path_factory):
    model = pyramid_jax.load_dit(str(DIT))
    folder = str(tmp_path_factory.mktemp("lora") / "lora")
    save_lora(folder, trained_adapters(model), LORA, model.config)
    return folder


def test_merged_dit_matches_the_adapters_and_the_pipeline_merge(lora_folder, tmp_path):
    out = str(tmp_path / "merged")
    assert merge_lora.main(["--dit", str(DIT), "--lora", f"{lora_folder}:0.5", "--output", out]) == 0
    merged = pyramid_jax.load_dit(out)
    base = pyramid_jax.load_dit(str(DIT))
    adapted = with_lora_paths(pyramid_jax.load_dit(str(DIT)), trained_adapters(base), 2 * 0.5)
    args, _ = load_case(np.load(FIXTURES / "dit_flux" / "cases.npz"), "case1")
    got, want, plain = merged(*args), adapted(*args), base(*args)
    for g, w, p in zip(got, want, plain):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
        assert np.abs(g - p).max() > 1e-2  # the adapters do change the output
    in_pipeline = merge_loras(base, check_loras([(lora_folder, 0.5)], base.config))
    for g, w in zip(jax.tree.leaves(nnx.state(in_pipeline)), jax.tree.leaves(nnx.state(merged))):
        np.testing.assert_array_equal(g, w)
    assert merge_lora.main(["--dit", str(DIT), "--lora", lora_folder, "--output", out, "--overwrite"]) == 0
    with pytest.raises(SystemExit, match="exists"):
        merge_lora.main(["--dit", str(DIT), "--lora", lora_folder, "--output", out])


def test_a_lora_is_a_few_arrays_and_a_record(lora_folder):
    record = json.load(open(os.path.join(lora_folder, "config.json")))
    assert record["family"] == "PyramidFluxTransformer" and record["rank"] == 3 and record["scale"] == 2.0
    loaded = check_lora(lora_folder, 1.0, read_dit_config(str(DIT)), nnx.state(pyramid_jax.load_dit(str(DIT))))
    assert loaded.scale == 2.0 and len(nnx.to_flat_state(loaded.abstract)) == 2 * len(record["kernels"])


def test_bad_loras_are_refused_by_name_before_any_model_loads(lora_folder, tmp_path):
    tiny = read_dit_config(str(SNAPSHOT / "diffusion_transformer_384p"))
    with pytest.raises(LoraError, match="another DiT size: its single_transformer_blocks/0/attn/to_k/kernel is "
                                        r"\[32, 32\], this DiT's is \[64, 64\]"):
        check_loras([(lora_folder, 1.0)], tiny)
    mmdit = read_dit_config(str(FIXTURES / "snapshots" / "sd3_tiny" / "diffusion_transformer_384p"))
    with pytest.raises(LoraError, match="made for a PyramidFluxTransformer DiT, not for this PyramidDiffusionMMDiT"):
        check_loras([(lora_folder, 1.0)], mmdit)
    dit = read_dit_config(str(DIT))
    for scale in (float("nan"), float("inf"), "1"):
        with pytest.raises(LoraError, match="scale of LoRA .* it must be a finite number"):
            check_loras([(lora_folder, scale)], dit)
    with pytest.raises(LoraError, match="is not a LoRA folder"):
        check_loras([(str(tmp_path), 1.0)], dit)

    other_rank = tmp_path / "rank"
    shutil.copytree(lora_folder, other_rank)
    record = json.load(open(other_rank / "config.json"))
    json.dump({**record, "rank": 4}, open(other_rank / "config.json", "w"))
    with pytest.raises(LoraError, match=r"another rank layout: .*/lora_a is \[32, 3\], rank 4 needs \[32, 4\]"):
        check_loras([(str(other_rank), 1.0)], dit)

    with pytest.raises(LoraError, match="nan"):  # the pipeline checks before loading anything
        PyramidFlowPipeline.from_pretrained(str(SNAPSHOT), lora=[(lora_folder, math.nan)])
    import sample

    with pytest.raises(SystemExit, match="PyramidFluxTransformer|another DiT size"):
        sample.main(["--snapshot", str(SNAPSHOT), "--lora", f"{lora_folder}:0.7", "--no-compile-cache",
                     "--output", str(tmp_path / "x.mp4")])
