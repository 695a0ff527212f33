"""pyramid-jax: Pyramid Flow (pyramidal flow matching video generation) in JAX / Flax NNX."""

from pyramid_jax.dit.load import load_dit
from pyramid_jax.parallel.mesh import make_mesh
from pyramid_jax.pipeline import PyramidFlowPipeline
from pyramid_jax.text.encoder import load_text_encoder
from pyramid_jax.vae.load import load_vae

__all__ = ["PyramidFlowPipeline", "load_dit", "load_text_encoder", "load_vae", "make_mesh"]
