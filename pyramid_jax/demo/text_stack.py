"""The demo's text stack: word-level CLIP and T5 tokenizers and small random encoders, frozen.

`write_text_stack` writes a miniFLUX snapshot's `tokenizer/`, `text_encoder/`, `tokenizer_2/` and `text_encoder_2/`
so that `load_text_encoder(snapshot_dir, "pyramid_flux")` reads them like the released ones. Every demo word is one
token in both tokenizers, so the DiT learns from one random embedding per word instead of shared subword pieces.
The word list is kept as `tokenizer/vocabulary.txt`: `unknown_words` names a prompt's words outside it (any other word
is spelt in meaningless single-character pieces).
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import string
from typing import Iterable

import jax
import numpy as np
from flax import nnx

from pyramid_jax.dit.families import PYRAMID_FLUX
from pyramid_jax.io.weights import write_converted
from pyramid_jax.snapshot import text_folder_names
from pyramid_jax.text.clip import CLIPTextModel
from pyramid_jax.text.config import text_config_from_dict
from pyramid_jax.text.t5 import T5Encoder

CLIP_BOS, CLIP_EOS = "<|startoftext|>", "<|endoftext|>"
T5_SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 as in T5
END_OF_WORD = "</w>"
T5_SPACE = "▁"
# Unigram log-probabilities: a whole word always beats spelling it from the space and single characters.
WORD_SCORE, SPACE_SCORE, CHAR_SCORE = -1.0, -5.0, -10.0
VOCABULARY_FILE = "vocabulary.txt"  # in the CLIP tokenizer folder: the whole words, one a line
WORD = re.compile(r"[^\W_]+")  # how a prompt is split into words for the vocabulary check


def write_text_stack(snapshot_dir: str, words: Iterable[str], *, seed: int = 0, clip_width: int = 32,
                     t5_width: int = 32, layers: int = 2, heads: int = 2) -> None:
    """Writes the four text folders into `snapshot_dir` (none may exist yet); deterministic in `words` and `seed`.

    Each whitespace-separated word of `words` becomes one token: lower-cased in CLIP (whose tokenizer lower-cases;
    digits stay one token each, as in CLIP), and in T5 as written lower-case, Capitalised and UPPER-case (T5 is
    cased: transformers' T5 tokenizer keeps no normalizer from tokenizer.json). Other text is spelt per character.
    """
    words = sorted({w.lower() for text in words for w in text.split()})
    clip_tokenizer, clip_dir, t5_tokenizer, t5_dir = (
        os.path.join(snapshot_dir, name) for name in text_folder_names(PYRAMID_FLUX))
    clip_vocab = _write_clip_tokenizer(clip_tokenizer, words)
    with open(os.path.join(clip_tokenizer, VOCABULARY_FILE), "w", encoding="utf-8") as f:
        f.write("".join(w + "\n" for w in sorted({m for w in words for m in WORD.findall(w)})))
    t5_vocab_size = _write_t5_tokenizer(t5_tokenizer, words)
    clip_json = {
        "architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "vocab_size": len(clip_vocab),
        "hidden_size": clip_width, "intermediate_size": 4 * clip_width, "projection_dim": clip_width,
        "num_hidden_layers": layers, "num_attention_heads": heads, "max_position_embeddings": 77,
        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "bos_token_id": clip_vocab[CLIP_BOS],
        "eos_token_id": clip_vocab[CLIP_EOS], "pad_token_id": clip_vocab[CLIP_EOS]}
    t5_json = {
        "architectures": ["T5EncoderModel"], "model_type": "t5", "vocab_size": t5_vocab_size, "d_model": t5_width,
        "d_kv": t5_width // heads, "d_ff": 4 * t5_width, "num_layers": layers, "num_heads": heads,
        "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128, "layer_norm_epsilon": 1e-6, "pad_token_id": 0, "eos_token_id": 1}
    rngs = nnx.Rngs(seed)
    clip = CLIPTextModel(text_config_from_dict(clip_json), rngs=rngs)
    t5 = T5Encoder(text_config_from_dict(t5_json), rngs=rngs)
    _rescale_t5_init(t5, rngs)
    _write_model(clip_dir, clip, clip_json)
    _write_model(t5_dir, t5, t5_json)


def add_words(src: str, dst: str, words: Iterable[str], *, seed: int = 1) -> None:
    """Writes into `dst` the four text folders of the snapshot `src` with `words` added as whole-word tokens.

    New words get new token ids (CLIP: merges appended after the old ones; T5: pieces appended to the vocabulary)
    and new random embedding rows, drawn with the spread of the old rows; every old id, row and weight is kept, so a
    text of old words encodes exactly as before (an unknown word spelt in pieces may now use the new merges). This
    gives a LoRA a word the base demo never saw (tools/teach_shapes_lora.py).
    """
    words = sorted({w.lower() for text in words for w in text.split()})
    key = jax.random.key(seed)
    clip_size = _add_clip_words(os.path.join(src, "tokenizer"), os.path.join(dst, "tokenizer"), words)
    vocabulary = word_vocabulary(dst)
    if vocabulary is not None:  # the new words are whole words too (sample.py's vocabulary check)
        with open(os.path.join(dst, "tokenizer", VOCABULARY_FILE), "w", encoding="utf-8") as f:
            f.write("".join(w + "\n" for w in sorted({*vocabulary, *(m for w in words for m in WORD.findall(w))})))
    t5_size = _add_t5_words(os.path.join(src, "tokenizer_2"), os.path.join(dst, "tokenizer_2"), words)
    for i, (folder, size) in enumerate((("text_encoder", clip_size), ("text_encoder_2", t5_size))):
        _grow_embedding(os.path.join(src, folder), os.path.join(dst, folder), size, jax.random.fold_in(key, i))


def _add_clip_words(src: str, dst: str, words: list[str]) -> int:
    """Copies CLIP tokenizer `src` to `dst` with merges that join each new word; returns the new vocab size."""
    from transformers import CLIPTokenizer

    shutil.copytree(src, dst)
    with open(os.path.join(src, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(src, "merges.txt"), encoding="utf-8") as f:
        merges = [tuple(line.split()) for line in f.read().splitlines()[1:] if line.strip()]
    ranks = {pair: i for i, pair in enumerate(merges)}
    backend = CLIPTokenizer(vocab={CLIP_BOS: 0, CLIP_EOS: 1}, merges=[]).backend_tokenizer
    for w in words:
        for piece, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(w)):
            symbols = _bpe((*piece[:-1], piece[-1] + END_OF_WORD), ranks)
            while len(symbols) > 1:  # merge the word's remaining pieces left to right, each merge a new token
                ranks[symbols[:2]] = len(ranks)
                merges.append(symbols[:2])
                symbols = (symbols[0] + symbols[1], *symbols[2:])
                vocab.setdefault(symbols[0], len(vocab))
    _write_files(dst, {"vocab.json": vocab, "merges.txt": "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)},
                 exist_ok=True)
    return len(vocab)


def _add_t5_words(src: str, dst: str, words: list[str]) -> int:
    """Copies T5 tokenizer `src` to `dst` with each new word's pieces appended; returns the new vocab size."""
    shutil.copytree(src, dst)
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        tokenizer = json.load(f)
    vocab = tokenizer["model"]["vocab"]
    known = {piece for piece, _ in vocab}
    vocab += [[T5_SPACE + v, WORD_SCORE] for w in words for v in dict.fromkeys((w, w.capitalize(), w.upper()))
              if T5_SPACE + v not in known]
    _write_files(dst, {"tokenizer.json": tokenizer}, exist_ok=True)
    return len(vocab)


def _grow_embedding(src: str, dst: str, vocab_size: int, key: jax.Array) -> None:
    """Copies the text model folder `src` to `dst` with its token table grown to `vocab_size` rows."""
    from pyramid_jax.text.load import load_text_model

    model = load_text_model(src)
    table = (model.token_embedding if isinstance(model, CLIPTextModel) else model.shared).embedding
    old = table.get_value()
    rows = jax.random.normal(key, (vocab_size - old.shape[0], old.shape[1]), old.dtype) * old.std()
    table.set_value(np.concatenate([old, rows]))
    with open(os.path.join(src, "config.json")) as f:
        config_json = {**json.load(f), "vocab_size": vocab_size}
    _write_model(dst, model, config_json)


def word_vocabulary(snapshot_dir: str) -> list[str] | None:
    """The whole words of a snapshot with word-level tokenizers (`write_text_stack`), else None (subword ones)."""
    path = os.path.join(snapshot_dir, "tokenizer", VOCABULARY_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read().split()


def unknown_words(prompt: str, vocabulary: list[str]) -> list[str]:
    """The words of `prompt` (lower-cased, split at anything but letters and digits) outside `vocabulary`, in order."""
    known = set(vocabulary)
    return list(dict.fromkeys(w for w in WORD.findall(prompt.lower()) if w not in known))


def _rescale_t5_init(t5: T5Encoder, rngs: nnx.Rngs) -> None:
    """transformers' T5 init scales: N(0, 1) word embeddings and queries scaled by d_kv^-1/2 (T5 attention has no
    1/sqrt(d)), so each position's features stay dominated by its own word, like that word in other captions."""
    table = t5.shared.embedding
    table.set_value(jax.random.normal(rngs.params(), table.get_value().shape, table.get_value().dtype))
    for block in t5.blocks:
        query = block.attention.q.kernel
        query.set_value(query.get_value() / np.sqrt(t5.config.d_kv))


def _write_model(folder: str, model: nnx.Module, config_json: dict) -> None:
    """A converted folder: the HF-style `config_json` and the Orbax checkpoint of `model`."""
    arrays = ((path, np.asarray(var.get_value())) for path, var in nnx.to_flat_state(nnx.state(model)))
    write_converted(folder, config_json, arrays)


def _write_clip_tokenizer(folder: str, words: list[str]) -> dict[str, int]:
    """CLIP's byte-level BPE files (vocab.json, merges.txt) with merges that join each word; returns the vocab."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    # Split words exactly as the loaded tokenizer will (lower-case, CLIP's regex, byte-level characters).
    backend = CLIPTokenizer(vocab={CLIP_BOS: 0, CLIP_EOS: 1}, merges=[]).backend_tokenizer
    pieces = sorted({piece for w in words
                     for piece, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(w))})
    merges = _learn_merges([(*p[:-1], p[-1] + END_OF_WORD) for p in pieces])
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = [*alphabet, *(c + END_OF_WORD for c in alphabet), *(a + b for a, b in merges), CLIP_BOS, CLIP_EOS]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    specials = {"bos_token": CLIP_BOS, "eos_token": CLIP_EOS, "pad_token": CLIP_EOS, "unk_token": CLIP_EOS}
    _write_files(folder, {
        "vocab.json": vocab,
        "merges.txt": "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
        "special_tokens_map.json": specials,
        "tokenizer_config.json": {**specials, "add_prefix_space": False, "clean_up_tokenization_spaces": True,
                                  "do_lower_case": True, "errors": "replace", "model_max_length": 77,
                                  "tokenizer_class": "CLIPTokenizer"}})
    return vocab


def _learn_merges(words: list[tuple[str, ...]]) -> list[tuple[str, str]]:
    """BPE merges, most frequent pair first, added until each word (as symbols) encodes to a single token."""
    merges: list[tuple[str, str]] = []
    while True:
        ranks = {pair: i for i, pair in enumerate(merges)}
        encoded = [_bpe(word, ranks) for word in words]
        pairs = collections.Counter(pair for e in encoded for pair in zip(e, e[1:]))
        if not pairs:
            return merges
        merges.append(min(pairs, key=lambda pair: (-pairs[pair], pair)))


def _bpe(symbols: tuple[str, ...], ranks: dict[tuple[str, str], int]) -> tuple[str, ...]:
    """BPE encoding as `tokenizers` does it: merge the lowest-ranked (then leftmost) adjacent pair while any is."""
    symbols = list(symbols)
    while len(symbols) > 1:
        rank, i = min((ranks.get(pair, len(ranks)), i) for i, pair in enumerate(zip(symbols, symbols[1:])))
        if rank == len(ranks):
            break
        symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
    return tuple(symbols)


def _write_t5_tokenizer(folder: str, words: list[str]) -> int:
    """A T5 Unigram tokenizer.json (whole words with a leading `▁`, single characters); returns its vocab size."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    variants = dict.fromkeys(T5_SPACE + v for w in words for v in (w, w.capitalize(), w.upper()))
    chars = string.ascii_letters + string.digits + string.punctuation
    vocab = [(s, 0.0) for s in T5_SPECIALS] + [(v, WORD_SCORE) for v in variants]
    vocab += [(T5_SPACE, SPACE_SCORE)] + [(c, CHAR_SCORE) for c in chars]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=T5_SPECIALS.index("<unk>"), byte_fallback=False))
    tokenizer.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in T5_SPECIALS])
    metaspace = dict(replacement=T5_SPACE, prepend_scheme="always", split=True)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                       pre_tokenizers.Metaspace(**metaspace)])
    tokenizer.decoder = decoders.Metaspace(**metaspace)
    tokenizer.post_processor = processors.TemplateProcessing(single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"],
                                                             special_tokens=[("</s>", 1)])
    specials = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    _write_files(folder, {
        "tokenizer.json": json.loads(tokenizer.to_str()),
        "special_tokens_map.json": specials,
        "tokenizer_config.json": {**specials, "extra_ids": 0, "model_max_length": 512,
                                  "clean_up_tokenization_spaces": True, "tokenizer_class": "T5Tokenizer"}})
    return tokenizer.get_vocab_size()


def _write_files(folder: str, files: dict[str, str | dict], exist_ok: bool = False) -> None:
    """Creates `folder` (which must not exist yet, unless `exist_ok`) with `files`: text as is, dicts as JSON."""
    os.makedirs(folder, exist_ok=exist_ok)
    for name, content in files.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write(content if isinstance(content, str) else json.dumps(content, indent=2, ensure_ascii=False))
