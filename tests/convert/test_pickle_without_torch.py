"""The pickled `.bin` path (the released miniFLUX VAE) converts without torch: a subprocess never imports it."""

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
from flax import nnx
from safetensors.numpy import load_file

from conftest import FIXTURES
from pyramid_jax.vae.load import load_vae

MODEL = FIXTURES / "vae" / "model"
ROOT = FIXTURES.parents[1]

CONVERT = textwrap.dedent("""
    import sys
    from pyramid_jax.snapshot_conversion import convert_snapshot
    assert convert_snapshot(sys.argv[1], sys.argv[2], components=["vae"], allow_pickle=True) == ["causal_video_vae"]
    assert "torch" not in sys.modules, "converting a .bin imported torch"
""")


def test_bin_converts_without_importing_torch(tmp_path):
    import torch

    vae = tmp_path / "snapshot" / "causal_video_vae"
    vae.mkdir(parents=True)
    tensors = load_file(str(MODEL / "diffusion_pytorch_model.safetensors"))
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, vae / "diffusion_pytorch_model.bin")
    shutil.copy(MODEL / "config.json", vae / "config.json")

    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", CONVERT, str(tmp_path / "snapshot"), str(tmp_path / "out")], check=True,
                   env=env, cwd=tmp_path, timeout=600)

    converted = dict(nnx.to_flat_state(nnx.state(load_vae(str(tmp_path / "out" / "causal_video_vae")))))
    reference = dict(nnx.to_flat_state(nnx.state(load_vae(str(MODEL)))))
    assert converted.keys() == reference.keys()
    for path in reference:
        np.testing.assert_array_equal(np.asarray(converted[path].get_value()),
                                      np.asarray(reference[path].get_value()))
