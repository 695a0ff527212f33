"""Caption wordings of the moving-shapes clips: the training templates and wordings held out for evaluation."""

from __future__ import annotations

import itertools
import re
from typing import NamedTuple, Sequence

import numpy as np

from pyramid_jax.demo.shapes import COLOURS, DIRECTIONS, SHAPES, ShapeClip

TRAIN_TEMPLATES = (
    "a {colour} {shape} moving {direction}",
    "a {colour} {shape} moves {direction}",
    "{colour} {shape} moving {direction}",
    "the {colour} {shape} slides {direction}",
    "a {colour} {shape} going {direction}",
    "a {shape}, {colour}, moving {direction}",
)
# Never seen in training: the evaluation prompts are these wordings (of colours, shapes and directions that are).
HELD_OUT_TEMPLATES = (
    "the {colour} {shape} is moving {direction}",
    "one {colour} {shape} slides {direction}",
)
# The pipeline appends this to every prompt (as the reference does); half of the training captions end with it.
PROMPT_SUFFIX = ", hyper quality, Ultra HD, 8K"


class HeldOutPrompt(NamedTuple):
    """An evaluation prompt in a held-out wording and what its video should show."""

    prompt: str
    colour: str
    shape: str
    direction: str


def held_out_prompts(kind: str = "directions") -> list[HeldOutPrompt]:
    """The demo's evaluation prompts: "directions", every colour with every direction (24; shapes and the
    wordings in turn), or "shapes", every colour with every shape (18; directions in turn)."""
    if kind == "directions":
        draws = [(c, SHAPES[i % len(SHAPES)], d) for i, (c, d) in enumerate(itertools.product(COLOURS, DIRECTIONS))]
    elif kind == "shapes":
        draws = [(c, s, d) for (c, s), d in zip(itertools.product(COLOURS, SHAPES), itertools.cycle(DIRECTIONS))]
    else:
        raise ValueError(f"kind must be 'directions' or 'shapes', got {kind!r}")
    return in_held_out_wordings(draws)


def in_held_out_wordings(draws: Sequence[tuple[str, str, str]]) -> list[HeldOutPrompt]:
    """`(colour, shape, direction)` draws as prompts, the held-out wordings in turn."""
    return [HeldOutPrompt(HELD_OUT_TEMPLATES[i % len(HELD_OUT_TEMPLATES)].format(colour=c, shape=s, direction=d),
                          c, s, d) for i, (c, s, d) in enumerate(draws)]


def caption(clip: ShapeClip, template: str) -> str:
    return template.format(colour=clip.colour, shape=clip.shape, direction=clip.direction)


def random_caption(rng: np.random.Generator, clip: ShapeClip) -> str:
    text = caption(clip, TRAIN_TEMPLATES[rng.integers(len(TRAIN_TEMPLATES))])
    return text + PROMPT_SUFFIX if rng.random() < 0.5 else text


def vocabulary() -> list[str]:
    """Every word of every caption wording and of the suffix, lower-cased (the demo tokenizers' whole words)."""
    texts = [*TRAIN_TEMPLATES, *HELD_OUT_TEMPLATES, PROMPT_SUFFIX, *COLOURS, *SHAPES, *DIRECTIONS]
    words = {w for text in texts for w in re.findall(r"[a-z0-9]+", text.lower())}
    return sorted(w for w in words if w not in ("colour", "shape", "direction"))
