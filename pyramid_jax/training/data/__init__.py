"""Training data: jsonl annotations over pre-extracted latents and text features (or raw videos), bucketed,
read per host by a grain pipeline with checkpointable state (`source.Batches`); synthetic batches for
smoke runs."""

from pyramid_jax.training.data.config import DataConfig, DataSource
from pyramid_jax.training.data.errors import DataError, OnError

__all__ = ["DataConfig", "DataError", "DataSource", "OnError"]
