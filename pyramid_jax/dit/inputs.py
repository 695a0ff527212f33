"""A DiT call's arguments, checked and split per stage; shared by both families."""

from __future__ import annotations

from typing import Callable

from pyramid_jax.dit.tokens import StageLayout, stage_rows, text_image_mask


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
                 encoder_hidden_states, encoder_attention_mask, pooled_projections, timestep_ratio):
    """Per stage s: its layout, conditioning vector `temb [B, D]`, text stream `[B, L, D]` and attention mask.

    `embed_time_text(timestep, pooled)` and `embed_text(encoder_hidden_states)` are the model's embedders; their
    rows b*S + s are split into one batch-B tensor per stage.
    """
    layouts = stage_layouts(sample, channels, encoder_hidden_states, encoder_attention_mask, pooled_projections,
                            timestep_ratio)
    num_stages = len(sample)
    temb = stage_rows(embed_time_text(timestep_ratio, pooled_projections), num_stages)
    text = stage_rows(embed_text(encoder_hidden_states), num_stages)
    masks = [text_image_mask(valid, layout, temporal_causal)
             for valid, layout in zip(stage_rows(encoder_attention_mask, num_stages), layouts)]
    return layouts, temb, text, masks
