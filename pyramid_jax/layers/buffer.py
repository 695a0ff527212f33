"""`Buffer`: non-trainable model state converted from a torch buffer (e.g. the MMDiT sincos table)."""

from __future__ import annotations

from flax import nnx


class Buffer(nnx.Variable):
    """A constant that travels with the weights (loaded, cast, sharded) but is not a `Param`, so optimisers skip it."""
