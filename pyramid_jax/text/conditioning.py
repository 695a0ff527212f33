"""`TextConditioning`: what the text encoders produce and the DiT, the sampler and training consume.

Its trailing padding can be cut: padded positions (mask 0) are masked out as keys for every query of the DiT's
attention, text positions carry no ids that depend on the length, and the DiT outputs only image tokens, so cutting
positions that are padding in every row changes no image output, only the sequence the DiT pays for.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from pyramid_jax import validation
from pyramid_jax.errors import ArgumentError

# The lengths the sampler cuts the text to: powers of two from 16 up to the encoder's length (16, 32, 64, 128 for
# T5's 128). Every length compiles programs of its own: geometric steps keep them few (4 for 128) and put most
# prompts on one (with guidance the negative prompt's row counts too), while the padding kept stays below the tokens
# kept once they are more than 16.
MIN_TEXT_BUCKET = 16


class TextConditioning(NamedTuple):
    """The DiT's text inputs: embeds `[R, L, J]`, mask `[R, L]` (1 = token), pooled `[R, P]`.

    With guidance the rows are `[negative (B rows); positive (B rows)]`, else the B positive rows.
    """

    embeds: jax.Array
    mask: jax.Array
    pooled: jax.Array


def text_length(mask) -> int:
    """Positions up to the last token (mask 1) of any row of `mask` (`[L]` or `[R, L]`; 0: no token at all)."""
    mask = np.asarray(mask)
    tokens = np.flatnonzero(mask.reshape(-1, mask.shape[-1]).any(axis=0))
    return int(tokens[-1]) + 1 if tokens.size else 0


def cut_text(text: TextConditioning, length: int, name: str = "length") -> TextConditioning:
    """`text` (one caption: embeds `[L, J]`, mask `[L]`; or rows `[R, L, J]`, `[R, L]`) cut to its first `length`
    positions. Cutting a token (mask 1 in any row) is an error, naming `length` as `name`."""
    length = validation.integer(length, name, minimum=1, maximum=text.mask.shape[-1])
    used = text_length(text.mask)
    if used > length:
        raise ArgumentError(f"the text has {used} text positions, more than {name}={length}; raise {name}")
    return TextConditioning(text.embeds[..., :length, :], text.mask[..., :length], text.pooled)


def text_bucket(mask) -> int:
    """The length the sampler cuts rows `mask [R, L]` to: the smallest power of two (at least `MIN_TEXT_BUCKET`,
    at most L) that holds every row's tokens, guidance's negative rows included."""
    used = text_length(mask)
    return min(np.shape(mask)[-1], max(MIN_TEXT_BUCKET, 1 << max(used - 1, 0).bit_length()))
