"""`TextConditioning`: what the text encoders produce and the DiT, the sampler and training consume."""

from __future__ import annotations

from typing import NamedTuple

import jax


class TextConditioning(NamedTuple):
    """The DiT's text inputs: embeds `[R, L, J]`, mask `[R, L]` (1 = token), pooled `[R, P]`.

    With guidance the rows are `[negative (B rows); positive (B rows)]`, else the B positive rows.
    """

    embeds: jax.Array
    mask: jax.Array
    pooled: jax.Array
