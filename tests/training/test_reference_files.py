"""The reference's `.pt` latents and text features (written by torch.save) through the data readers."""

import json

import numpy as np
import pytest
import torch

from pyramid_jax.training.data.annotations import read_annotations
from pyramid_jax.training.data.errors import DataError
from pyramid_jax.training.data.readers import LatentReader, TextReader

from conftest import ncthw_to_cl


def test_reference_latents_and_text_features_are_read_channels_last(tmp_path):
    latent = torch.randn(1, 4, 3, 6, 10).bfloat16()  # [1, C, T, h, w], as the reference's extraction saves it
    text = {"prompt_embed": torch.randn(1, 8, 32).bfloat16(),
            "prompt_attention_mask": torch.tensor([[1] * 6 + [0] * 2]),  # int64
            "pooled_prompt_embed": torch.randn(1, 24).bfloat16()}
    torch.save(latent, tmp_path / "clip-latent-384-0.pt")
    torch.save(text, tmp_path / "clip-text.pt")
    (tmp_path / "train.jsonl").write_text(json.dumps(
        {"text": "a clip", "latent": "clip-latent-384-0.pt", "text_fea": "clip-text.pt"}) + "\n")
    record, = read_annotations(str(tmp_path / "train.jsonl"))

    latents = LatentReader(max_frames=2, channels=4)
    key = latents.key(record)
    assert key == (2, 6, 10)
    got = latents.load(record, key)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, ncthw_to_cl(latent.float().numpy())[0, :2])

    texts = TextReader(features=True)
    assert texts.key(record) == ((8, 32), (8,), (24,))
    embeds, mask, pooled = texts.load(record)
    assert (embeds.dtype, mask.dtype, pooled.dtype) == (np.float32, np.int32, np.float32)
    np.testing.assert_array_equal(embeds, text["prompt_embed"][0].float().numpy())
    np.testing.assert_array_equal(mask, [1] * 6 + [0] * 2)
    np.testing.assert_array_equal(pooled, text["pooled_prompt_embed"][0].float().numpy())


def test_wrong_or_unsafe_reference_files_name_the_file(tmp_path):
    cases = {"latent": torch.randn(4, 3, 6, 10), "text_fea": {"prompt_embed": torch.randn(1, 8, 32)},
             "unsafe": {"prompt_embed": torch.randn(1, 8, 32), "extra": {1, 2}}}
    for name, content in cases.items():
        torch.save(content, tmp_path / f"{name}.pt")
    with pytest.raises(DataError, match=r"latent.pt: a reference latent file holds one tensor \[1, C, T, h, w\]"):
        LatentReader(2, 4).key({"latent": str(tmp_path / "latent.pt")})
    with pytest.raises(DataError, match="text_fea.pt: a reference text feature file holds a dict with"):
        TextReader(True).key({"text_fea": str(tmp_path / "text_fea.pt")})
    with pytest.raises(DataError, match="unsafe.pt: unreadable text feature file .*refusing to load `__builtin__.set`"):
        TextReader(True).key({"text_fea": str(tmp_path / "unsafe.pt")})
