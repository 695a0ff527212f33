"""The demo text stack: whole-word tokens in both tokenizers, loadable as a miniFLUX snapshot, deterministic."""

import filecmp

import jax
import numpy as np
import pytest

from pyramid_jax.demo.text_stack import add_words, unknown_words, word_vocabulary, write_text_stack
from pyramid_jax.text.encoder import T5_MAX_LENGTH, load_text_encoder
from pyramid_jax.text.load import load_text_model

COLOURS = ("red", "blue", "green", "yellow")
# A whole caption among the words: it is split on whitespace, so "the" and "slides" become words too.
WORDS = ("a", *COLOURS, "circle", "moving", "left", "hyper", "quality", "ultra", "hd", "8k",
         "the blue square slides up")
SUFFIX = ", hyper quality, Ultra HD, 8K"
CLIP_WIDTH, T5_WIDTH = 24, 16


def _write(path, words=WORDS, seed=0):
    write_text_stack(str(path), words, seed=seed, clip_width=CLIP_WIDTH, t5_width=T5_WIDTH)
    return path


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def encoder(snapshot):
    return load_text_encoder(str(snapshot), "pyramid_flux")


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_words_are_single_tokens(encoder):
    clip, t5 = encoder.clip_tokenizers[0], encoder.t5_tokenizer
    assert clip.tokenize("a red circle moving left") == ["a</w>", "red</w>", "circle</w>", "moving</w>", "left</w>"]
    assert clip.tokenize("The BLUE square slides up" + SUFFIX) == [
        "the</w>", "blue</w>", "square</w>", "slides</w>", "up</w>", ",</w>", "hyper</w>", "quality</w>", ",</w>",
        "ultra</w>", "hd</w>", ",</w>", "8</w>", "k</w>"]  # CLIP splits digits off, as the released one does
    assert t5.tokenize("the blue square slides up" + SUFFIX) == [
        "▁the", "▁blue", "▁square", "▁slides", "▁up", ",", "▁hyper", "▁quality", ",", "▁Ultra", "▁HD", ",", "▁8K"]
    assert (t5.pad_token_id, t5.eos_token_id, t5.unk_token_id) == (0, 1, 2)
    assert (encoder.clips[0].config.vocab_size, encoder.t5.config.vocab_size) == (len(clip), len(t5))
    # Unknown words are spelt in pieces, never <unk>.
    assert len(clip.tokenize("magenta")) > 1
    assert clip.unk_token_id not in clip("magenta!", add_special_tokens=False)["input_ids"]
    assert t5.tokenize("magenta!") == ["▁", *"magenta!"]


def test_encoder_outputs(encoder):
    prompts = ["a red circle moving left", "the blue square slides up" + SUFFIX]
    embeds, mask, pooled = map(np.asarray, encoder(prompts))
    assert embeds.shape == (2, T5_MAX_LENGTH, T5_WIDTH) and pooled.shape == (2, CLIP_WIDTH)
    np.testing.assert_array_equal(mask.sum(-1), [5 + 1, 13 + 1])  # tokens and `</s>`
    assert np.isfinite(embeds).all() and np.isfinite(pooled).all()


def test_colours_give_different_features(encoder):
    """T5 features of a colour are far from other colours' and nearest to that colour in another wording;
    the pooled CLIP vectors differ by a good fraction of their norm."""
    embeds, _, pooled = map(np.asarray, encoder([f"a {c} circle moving left" for c in COLOURS]))
    other, _, _ = encoder([f"the {c} square slides up{SUFFIX}" for c in COLOURS])
    similarity = _unit(embeds[:, 1]) @ _unit(other[:, 1]).T  # [colour, colour] at the colour word
    off_diagonal = ~np.eye(len(COLOURS), dtype=bool)
    assert (_unit(embeds[:, 1]) @ _unit(embeds[:, 1]).T)[off_diagonal].max() < 0.8
    np.testing.assert_array_equal(similarity.argmax(-1), np.arange(len(COLOURS)))
    distances = np.linalg.norm(pooled[:, None] - pooled[None], axis=-1)[off_diagonal]
    assert distances.min() > 0.1 * np.linalg.norm(pooled, axis=-1).mean()


def test_clip_pools_at_the_first_eos(encoder):
    clip, tokenizer = encoder.clips[0], encoder.clip_tokenizers[0]
    # The last id, so the legacy (eos_token_id == 2, argmax) rule would pick the same token.
    assert clip.config.eos_token_id == tokenizer.eos_token_id == clip.config.vocab_size - 1
    prompts = ["a red circle", "a green circle moving left"]
    ids = encoder.tokenize(prompts).clip_ids[0]
    out = clip(ids)
    for row, prompt in enumerate(prompts):
        eos = len(prompt.split()) + 1  # after `<|startoftext|>` and the words; pads (also `<|endoftext|>`) follow
        assert ids[row, eos] == ids[row, -1] == tokenizer.eos_token_id
        np.testing.assert_array_equal(out.pooler_output[row], out.last_hidden_state[row, eos])


def test_same_seed_same_stack(snapshot, tmp_path):
    again = _write(tmp_path / "again", WORDS[::-1])
    other = _write(tmp_path / "other", seed=1)
    for name in ("tokenizer", "tokenizer_2"):
        files = [p.name for p in (snapshot / name).iterdir()]
        assert filecmp.cmpfiles(snapshot / name, again / name, files, shallow=False)[0] == files
    for name in ("text_encoder", "text_encoder_2"):
        first, same, reseeded = (jax.tree.leaves(load_text_model(str(root / name)))
                                 for root in (snapshot, again, other))
        assert all(np.array_equal(a, b) for a, b in zip(first, same))
        assert all(not np.array_equal(a, c) for a, c in zip(first, reseeded) if np.std(a) > 0)  # not zeros/ones


def test_refuses_existing_folders(snapshot):
    with pytest.raises(FileExistsError):
        _write(snapshot)


def test_added_words_are_single_tokens_and_old_text_encodes_as_before(snapshot, encoder, tmp_path):
    add_words(str(snapshot), str(tmp_path), ["orange", "magenta"])
    grown = load_text_encoder(str(tmp_path), "pyramid_flux")
    clip, t5 = grown.clip_tokenizers[0], grown.t5_tokenizer
    assert clip.tokenize("the Orange circle") == ["the</w>", "orange</w>", "circle</w>"]
    assert t5.tokenize("the orange ORANGE circle") == ["▁the", "▁orange", "▁ORANGE", "▁circle"]
    assert (grown.clips[0].config.vocab_size, grown.t5.config.vocab_size) == (len(clip), len(t5))
    prompts = ["a red circle moving left", "the blue square slides up" + SUFFIX]
    for old, new in zip(encoder(prompts), grown(prompts)):
        np.testing.assert_array_equal(np.asarray(new), np.asarray(old))
    red, orange = (np.asarray(grown(f"a {c} circle")[0])[0, 1] for c in ("red", "orange"))
    assert np.abs(red - orange).max() > 0.1
    assert word_vocabulary(str(tmp_path)) == sorted({*word_vocabulary(str(snapshot)), "orange", "magenta"})


def test_the_word_list_names_unknown_words(snapshot, tmp_path):
    vocabulary = word_vocabulary(str(snapshot))
    assert vocabulary == sorted({*WORDS[:-1], "the", "blue", "square", "slides", "up"})
    assert unknown_words("The magenta square, slides UP" + SUFFIX + " magenta", vocabulary) == ["magenta"]
    assert word_vocabulary(str(tmp_path)) is None  # no list: a subword tokenizer, nothing to check
