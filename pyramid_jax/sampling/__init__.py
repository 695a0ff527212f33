"""Pyramidal flow-matching sampling: the stage schedule, pyramid and history operations, noise, the AR sampler."""

from pyramid_jax.sampling.noise import KeyNoise, RecordedNoise, UnitNoise
from pyramid_jax.sampling.sampler import PyramidSampler, guidance_rows
from pyramid_jax.sampling.scheduler import PyramidFlowScheduler
from pyramid_jax.text.conditioning import TextConditioning

__all__ = ["KeyNoise", "PyramidFlowScheduler", "PyramidSampler", "RecordedNoise", "TextConditioning", "UnitNoise",
           "guidance_rows"]
