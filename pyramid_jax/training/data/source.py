"""The training loop's batch source (`loop.BatchSource`) for a `DataConfig`."""

from __future__ import annotations

from typing import Callable

from jax.sharding import Mesh

from pyramid_jax.training.data.annotations import read_annotations
from pyramid_jax.training.data.config import DataConfig, DataSource
from pyramid_jax.training.data.device import BatchMaker, to_device
from pyramid_jax.training.data.errors import BadFiles
from pyramid_jax.training.data.pipeline import DataIterator, DataPipeline
from pyramid_jax.training.data.readers import LatentReader, TextReader, VideoReader
from pyramid_jax.training.data.synthetic import synthetic_batches
from pyramid_jax.training.train_step import Batch


class Batches:
    """Training batches from a `DataIterator`, with its checkpointable state."""

    def __init__(self, iterator: DataIterator, maker: BatchMaker):
        self.iterator, self.maker = iterator, maker

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        position = self.iterator.position
        return self.maker(next(self.iterator), position)

    def get_state(self) -> dict:
        return self.iterator.get_state()


def batch_source(data: DataConfig, dit_config, *, seed: int, mesh: Mesh | None, family: str, vae=None,
                 text_encoder=None, log: Callable[[str], None] = print):
    """`source(start_step, state=None)` -> batches on `mesh`. `vae` is needed for videos, `text_encoder` for
    captions (`text_features=False`); `dit_config` gives the synthetic sizes and the latent channels."""
    if data.source is DataSource.SYNTHETIC:
        def synthetic(start: int, state: dict | None = None):
            for host in synthetic_batches(data, dit_config.latent_channels, dit_config.joint_attention_dim,
                                          dit_config.pooled_projection_dim, seed, start):
                yield to_device(Batch(*host), mesh)

        return synthetic
    if not data.annotation:
        raise ValueError(f"data.source={data.source.value} reads data.annotation=<a jsonl file>, which is not set")
    if data.source is DataSource.LATENTS:
        reader = LatentReader(data.frames, dit_config.latent_channels)
    else:
        reader = VideoReader(data.frames, data.resolutions)
    bad = BadFiles(data.on_error)
    pipeline = DataPipeline(read_annotations(data.annotation), reader, TextReader(data.text_features),
                            data.batch_size, seed, bad, data.read_threads, data.prefetch, log=log)
    maker = BatchMaker(family, mesh, seed, vae, text_encoder)
    return lambda start, state=None: Batches(pipeline.iterator(start, state), maker)
