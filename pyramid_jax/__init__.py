"""pyramid-jax: Pyramid Flow (pyramidal flow matching video generation) in JAX / Flax NNX."""

from pyramid_jax.dit.load import load_dit
from pyramid_jax.parallel.mesh import make_mesh

__all__ = ["load_dit", "make_mesh"]
