"""pyramid-jax: Pyramid Flow (pyramidal flow matching video generation) in JAX / Flax NNX."""

import os

# transformers (its tokenizers only) would announce on import that torch, which we never use, is missing.
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from pyramid_jax.dit.load import load_dit  # noqa: E402
from pyramid_jax.parallel.mesh import make_mesh  # noqa: E402
from pyramid_jax.pipeline import PyramidFlowPipeline  # noqa: E402
from pyramid_jax.text.encoder import load_text_encoder  # noqa: E402
from pyramid_jax.vae.load import load_vae  # noqa: E402

__all__ = ["PyramidFlowPipeline", "load_dit", "load_text_encoder", "load_vae", "make_mesh"]
