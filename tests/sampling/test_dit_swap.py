"""A trained DiT folder (train.py's `<output_dir>/model`) sampled with the rest of a snapshot: `from_pretrained(dit=)`
and `sample.py --dit`."""

import jax
import numpy as np
import pytest
from flax import nnx

import pyramid_jax.pipeline
import sample
from pyramid_jax.dit.config import dit_config_to_dict
from pyramid_jax.dit.load import load_dit
from pyramid_jax.io.weights import write_converted
from pyramid_jax.pipeline import PyramidFlowPipeline


@pytest.fixture(scope="module")
def zero_dit(tmp_path_factory):
    """The tiny DiT with every weight 0, written as train.py exports a model (config.json + Orbax params)."""
    dit = load_dit(sample.TINY_SNAPSHOT + "/diffusion_transformer_384p")
    folder = tmp_path_factory.mktemp("run") / "model"
    write_converted(str(folder), dit_config_to_dict(dit.config),
                    [(path, np.zeros_like(var.get_value())) for path, var in nnx.to_flat_state(nnx.state(dit))])
    return folder


def test_the_pipeline_samples_the_swapped_in_dit(zero_dit):
    pipe = PyramidFlowPipeline.from_pretrained(sample.TINY_SNAPSHOT, dit=str(zero_dit))
    with pipe.dit.use() as dit:
        assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves(nnx.state(dit)))
    assert (pipe.preset.width, pipe.preset.height, pipe.preset.max_temp) == (192, 128, 3)  # the snapshot's defaults


def test_sample_cli_passes_dit_and_checks_it(zero_dit, monkeypatch):
    seen = {}

    def from_pretrained(*args, **kwargs):
        seen.update(kwargs)
        raise SystemExit("stop before sampling")

    monkeypatch.setattr(pyramid_jax.pipeline.PyramidFlowPipeline, "from_pretrained", from_pretrained)
    with pytest.raises(SystemExit, match="stop before sampling"):
        sample.main(["--snapshot", sample.TINY_SNAPSHOT, "--dit", str(zero_dit), "--no-compile-cache"])
    assert seen["dit"] == str(zero_dit)
    with pytest.raises(SystemExit, match="--dit folder no_such_run/model does not exist"):
        sample.main(["--dit", "no_such_run/model", "--no-compile-cache"])
