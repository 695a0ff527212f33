"""The pipeline's text conditioning (pipeline_spec.md §1): tokenizers + CLIP and T5 encoders of one family, laid
out as the family's `TextLayout` says (dit/families.py): pooled CLIP vectors concatenated, T5 last hidden state."""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from pyramid_jax.dit.families import TextLayout, get_family
from pyramid_jax.parallel.compiled import ModelProgram, PlacedModel
from pyramid_jax.parallel.rules import LOGICAL_AXIS_RULES, Rules, constrain
from pyramid_jax.snapshot import Snapshot
from pyramid_jax.text.clip import CLIPTextModel
from pyramid_jax.text.conditioning import TextConditioning
from pyramid_jax.text.config import CLIPTextConfig, T5EncoderConfig
from pyramid_jax.text.load import load_text_model, read_text_config
from pyramid_jax.text.t5 import T5Encoder

T5_MAX_LENGTH = 128  # the reference pads and truncates T5 input to 128 tokens in both families


class Tokens(NamedTuple):
    clip_ids: tuple[np.ndarray, ...]  # one [B, clip_max_length] per CLIP
    t5_ids: np.ndarray  # [B, 128]
    t5_mask: np.ndarray  # [B, 128], 1 = token (including `</s>`), 0 = pad


@functools.partial(ModelProgram, static_argnames=("projected", "dtype", "rules"))
def encode_tokens(models: tuple[nnx.Module, ...], tokens: Tokens, *, projected: bool, dtype,
                  rules: Rules) -> TextConditioning:
    """`models` = (CLIPs..., T5) on `tokens`; the outputs held batch-sharded on the mesh traced under (if any)."""
    *clips, t5 = models
    outputs = [clip(ids) for clip, ids in zip(clips, tokens.clip_ids)]
    pooled = jnp.concatenate([o.text_embeds if projected else o.pooler_output for o in outputs], axis=-1)
    embeds = t5(tokens.t5_ids, tokens.t5_mask)
    return TextConditioning(*(constrain(x, ("batch",) + (None,) * (x.ndim - 1), rules)
                              for x in (embeds.astype(dtype), tokens.t5_mask, pooled.astype(dtype))))


class TextEncoder:
    """`encoder(prompts)` -> `TextConditioning(embeds [B, 128, D], mask [B, 128] int32, pooled [B, P])` (the
    reference's prompt_embeds, prompt_attention_mask, pooled_prompt_embeds), embeddings in the encoder dtype,
    batch-sharded when a mesh is given.

    Like the reference, CLIP input is padded/truncated to the first CLIP tokenizer's `model_max_length` (77) with
    no attention mask, and T5 input to 128 tokens with its mask. Frozen: no gradients are meant to flow here.
    """

    def __init__(self, family: TextLayout, clip_tokenizers: Sequence, t5_tokenizer, clips: Sequence[CLIPTextModel],
                 t5: T5Encoder, dtype=jnp.float32, mesh: Mesh | None = None, rules: Rules = LOGICAL_AXIS_RULES):
        self.family, self.clip_tokenizers, self.t5_tokenizer = family, tuple(clip_tokenizers), t5_tokenizer
        self.clips, self.t5, self.dtype = tuple(clips), t5, dtype
        self.clip_max_length = self.clip_tokenizers[0].model_max_length
        self.models = PlacedModel((*self.clips, t5), mesh, rules)

    def tokenize(self, prompts: str | Sequence[str]) -> Tokens:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("no prompts given")
        clip_ids = tuple(
            np.asarray(tok(prompts, padding="max_length", max_length=self.clip_max_length, truncation=True)
                       ["input_ids"], np.int32) for tok in self.clip_tokenizers)
        t5 = self.t5_tokenizer(prompts, padding="max_length", max_length=T5_MAX_LENGTH, truncation=True)
        return Tokens(clip_ids, np.asarray(t5["input_ids"], np.int32), np.asarray(t5["attention_mask"], np.int32))

    def __call__(self, prompts: str | Sequence[str]) -> TextConditioning:
        return encode_tokens(self.models, self.models.place(self.tokenize(prompts)), projected=self.family.projected,
                             dtype=self.dtype, rules=self.models.rules)


def load_text_encoder(snapshot: str | Snapshot, family: str = "pyramid_flux", dtype=jnp.float32,
                      mesh: Mesh | None = None, *, allow_pickle: bool = False, rules: Rules = LOGICAL_AXIS_RULES,
                      progress=iter) -> TextEncoder:
    """The text encoder of `family` from a snapshot (released torch layout, or converted by
    `convert_torch_weights.py`); tokenizers are read from its `tokenizer*/` folders, never downloaded."""
    from transformers import CLIPTokenizer, T5TokenizerFast

    spec = get_family(family).text
    tokenizer_paths, paths = Snapshot(snapshot).text_folders(family)
    expected = [CLIPTextConfig] * len(spec.clips) + [T5EncoderConfig]
    for path, config, want in zip(paths, map(read_text_config, paths), expected):
        if not isinstance(config, want) or (want is CLIPTextConfig and spec.projected and not config.with_projection):
            raise ValueError(f"{family} needs a {_model_name(want, spec.projected)} in {path}; its config.json "
                             f"describes a {_model_name(type(config), getattr(config, 'with_projection', False))}")

    tokenizers = [CLIPTokenizer.from_pretrained(p, local_files_only=True) for p in tokenizer_paths[:-1]]
    t5_tokenizer = T5TokenizerFast.from_pretrained(tokenizer_paths[-1], local_files_only=True)
    *clips, t5 = (load_text_model(p, dtype, mesh, allow_pickle=allow_pickle, rules=rules, progress=progress)
                  for p in paths)
    return TextEncoder(spec, tokenizers, t5_tokenizer, clips, t5, dtype, mesh, rules)


def _model_name(config_cls: type, projected: bool) -> str:
    if config_cls is T5EncoderConfig:
        return "T5EncoderModel"
    return "CLIPTextModelWithProjection" if projected else "CLIPTextModel"
