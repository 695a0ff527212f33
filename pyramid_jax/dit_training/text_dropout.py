"""Classifier-free-guidance text dropout (pipeline_spec.md §5f): a sample's caption becomes "" with rate 0.1.

With pre-extracted text features the reference swaps in an undefined `null_text_embeds`; here the encoding of
the empty prompt is an explicit input (`TextEncoder("")`), computed once before training.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pyramid_jax.sampling import TextConditioning


def drop_text(text: TextConditioning, null_text: TextConditioning, u: jax.Array, rate: float) -> TextConditioning:
    """Rows whose uniform `u [N]` is `<= rate` take the empty prompt's row `null_text` (each field `[1, ...]`)."""
    if null_text.embeds.shape[1:] != text.embeds.shape[1:]:
        raise ValueError(f"the empty prompt's embeddings {null_text.embeds.shape[1:]} differ in shape from the "
                         f"captions' {text.embeds.shape[1:]} ([tokens, features])")
    dropped = u <= rate

    def pick(x, null):
        return jnp.where(dropped.reshape(-1, *([1] * (x.ndim - 1))), null.astype(x.dtype), x)

    return TextConditioning(*(pick(x, null) for x, null in zip(text, null_text)))
