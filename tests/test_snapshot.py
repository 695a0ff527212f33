"""`Snapshot`: the layout of a snapshot folder, with errors that name what is missing."""

import pytest

from conftest import FIXTURES
from pyramid_jax.dit.families import get_family
from pyramid_jax.snapshot import Snapshot

TINY = FIXTURES / "snapshots"


def test_layout_of_both_families():
    flux, sd3 = Snapshot(TINY / "miniflux_tiny"), Snapshot(TINY / "sd3_tiny")
    assert flux.variants == sd3.variants == ["diffusion_transformer_384p"]
    assert flux.vae.endswith("causal_video_vae")
    tokenizers, encoders = sd3.text_folders("sd3")
    assert [p.rsplit("/", 1)[1] for p in encoders] == ["text_encoder", "text_encoder_2", "text_encoder_3"]
    assert [p.rsplit("/", 1)[1] for p in tokenizers] == ["tokenizer", "tokenizer_2", "tokenizer_3"]
    assert len(flux.text_folders(get_family("PyramidFluxTransformer"))[1]) == 2
    assert Snapshot(flux).path == flux.path


def test_errors_name_the_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="snapshot folder .*nowhere does not exist"):
        Snapshot(tmp_path / "nowhere")
    for name in ("tokenizer", "text_encoder", "tokenizer_2", "text_encoder_2", "diffusion_transformer_384p"):
        (tmp_path / name).symlink_to(TINY / "miniflux_tiny" / name)
    snapshot = Snapshot(tmp_path)
    with pytest.raises(FileNotFoundError, match="has no causal_video_vae/ folder"):
        snapshot.vae  # noqa: B018
    with pytest.raises(FileNotFoundError, match=r"no DiT variant 'diffusion_transformer_768p'.*384p"):
        snapshot.dit("diffusion_transformer_768p")
    with pytest.raises(FileNotFoundError, match="has no tokenizer_3/ folder, which pyramid_mmdit needs"):
        snapshot.text_folders("pyramid_mmdit")
