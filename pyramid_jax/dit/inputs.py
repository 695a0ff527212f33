"""A DiT call's arguments, checked and split per stage; shared by both families."""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from pyramid_jax.dit.tokens import ImageTokens, StageLayout, stage_rows, text_image_mask
from pyramid_jax.parallel.rules import axis_multiple


@dataclasses.dataclass(frozen=True)
class StageGroups:
    """Stages whose token sequences are alike (the same layout and the same image token ids) run through the blocks
    as one batch: the model computes every row alone, so the numbers are those of separate runs, with one copy of
    each block in the program per group instead of per stage (the training columns of one pyramid stage)."""

    members: tuple[tuple[int, ...], ...]  # stage indices of each group, in order of their first stage

    @classmethod
    def of(cls, layouts: Sequence[StageLayout], image_tokens: Sequence[ImageTokens] | None) -> StageGroups:
        """Equal layouts group when no image tokens are given (their ids are the layout's) or when the stages were
        given one and the same `ImageTokens` object (same arrays: same values)."""
        groups: dict = {}
        for s, layout in enumerate(layouts):
            ids = None if image_tokens is None else (id(image_tokens[s].frame), id(image_tokens[s].valid))
            groups.setdefault((layout, ids), []).append(s)
        return cls(tuple(tuple(g) for g in groups.values()))

    def merge(self, per_stage: Sequence) -> list:
        """Per-stage pytrees of `[B, ...]` arrays -> per group, the members' rows concatenated."""
        return [jax.tree.map(lambda *xs: jnp.concatenate(xs), *(per_stage[s] for s in g)) for g in self.members]

    def split(self, per_group: Sequence[jax.Array]) -> list[jax.Array]:
        """Inverse of `merge` for per-group arrays `[len(group) * B, ...]`."""
        out = [None] * sum(map(len, self.members))
        for g, x in zip(self.members, per_group):
            for s, part in zip(g, jnp.split(x, len(g))):
                out[s] = part
        return out


def output_tokens(layout: StageLayout, total: int) -> int:
    """How many trailing tokens of a stage's sequence of `total` the DiT's last block computes: the current clip's
    (the only output), rounded up to a multiple of the mesh's token split so that they split, never replicate."""
    multiple = axis_multiple("length")
    return min(total, -(-layout.current.num_tokens // multiple) * multiple)


def stage_layouts(sample, channels: int, encoder_hidden_states, encoder_attention_mask, pooled_projections,
                  timestep_ratio) -> list[StageLayout]:
    """Checks `sample` (stages of clips `[B, T, H, W, C]`) and that every conditioning tensor has B*S rows."""
    if not isinstance(sample, (list, tuple)) or not sample or not all(isinstance(s, (list, tuple)) for s in sample):
        raise ValueError("sample must be a non-empty list of stages, each a list of clips [B, T, H, W, C]")
    first = next((clips[0] for clips in sample if clips), None)
    batch = None if first is None else first.shape[0]
    layouts = [StageLayout.from_clips(clips, batch, channels, s) for s, clips in enumerate(sample)]
    rows = batch * len(sample)
    for name, value, ndim in (("encoder_hidden_states", encoder_hidden_states, 3),
                              ("encoder_attention_mask", encoder_attention_mask, 2),
                              ("pooled_projections", pooled_projections, 2), ("timestep_ratio", timestep_ratio, 1)):
        if value.ndim != ndim or value.shape[0] != rows:
            raise ValueError(f"{name} must have {ndim} dims and batch x stages = {batch} x {len(sample)} = {rows} "
                             f"rows (row b*S + s is sample b, stage s); got shape {tuple(value.shape)}")
    if encoder_attention_mask.shape[1] != encoder_hidden_states.shape[1]:
        raise ValueError(f"encoder_attention_mask length {encoder_attention_mask.shape[1]} differs from "
                         f"encoder_hidden_states length {encoder_hidden_states.shape[1]}")
    return layouts


def stage_inputs(sample, channels: int, temporal_causal: bool, embed_time_text: Callable, embed_text: Callable,
                 encoder_hidden_states, encoder_attention_mask, pooled_projections, timestep_ratio,
                 image_tokens: Sequence[ImageTokens] | None = None):
    """Per group of alike stages (`StageGroups`, returned last): its layout, image token ids (`ImageTokens`), number
    of masked lead tokens to put in front of its image tokens, conditioning vector `temb [G*B, D]`, text stream
    `[G*B, L, D]` and attention mask, the rows of its G stages one after the other (`StageGroups.merge` the sample the
    same way, `StageGroups.split` the outputs).

    Traced on a mesh whose `sequence` axis splits tokens, the text and each stage's image tokens are padded (masked
    text pad at the end, image lead tokens in front) to a multiple of that axis, so that they split, never replicate.

    `embed_time_text(timestep, pooled)` and `embed_text(encoder_hidden_states)` are the model's embedders; their
    rows b*S + s are split into one batch-B tensor per stage. `image_tokens` (one per stage; None: every token real
    at its layout's frame ids) are runtime frame ids and pad flags, for a padded history.
    """
    layouts = stage_layouts(sample, channels, encoder_hidden_states, encoder_attention_mask, pooled_projections,
                            timestep_ratio)
    groups = StageGroups.of(layouts, image_tokens)
    if image_tokens is None:
        image_tokens = [ImageTokens.unpadded(layout) for layout in layouts]
    for s, (layout, image) in enumerate(zip(layouts, image_tokens, strict=True)):
        if image.frame.shape != (layout.num_tokens,) or image.valid.shape != (layout.num_tokens,):
            raise ValueError(f"image_tokens of stage {s}: frame and valid must be [{layout.num_tokens}] (the stage's "
                             f"image tokens), got {image.frame.shape} and {image.valid.shape}")
    multiple = axis_multiple("length")
    leads = [-layout.num_tokens % multiple for layout in layouts]
    image_tokens = [image.lead(lead) for image, lead in zip(image_tokens, leads)]
    text_pad = [(0, 0), (0, -encoder_hidden_states.shape[1] % multiple)]
    encoder_hidden_states = jnp.pad(encoder_hidden_states, text_pad + [(0, 0)])
    encoder_attention_mask = jnp.pad(encoder_attention_mask, text_pad)
    num_stages = len(sample)
    temb = stage_rows(embed_time_text(timestep_ratio, pooled_projections), num_stages)
    text = stage_rows(embed_text(encoder_hidden_states), num_stages)
    masks = [text_image_mask(valid, image, layout, temporal_causal) for valid, image, layout
             in zip(stage_rows(encoder_attention_mask, num_stages), image_tokens, layouts)]
    first = [g[0] for g in groups.members]
    masks = [masks[s].replace(valid=valid, query_valid=query) for s, (valid, query) in
             zip(first, groups.merge([(m.valid, m.query_valid) for m in masks]))]
    return ([layouts[s] for s in first], [image_tokens[s] for s in first], [leads[s] for s in first],
            groups.merge(temb), groups.merge(text), masks, groups)
