"""The DiT run's batch source (`batch_source`, a `loop.BatchSource` for a `DataConfig`): from this process's
`HostBatch` to the training `Batch` on the mesh.

Pre-extracted latents are placed, then normalised per frame for the DiT family (pipeline_spec.md §2, §5a).
Video frames are encoded by the VAE on the fly, sampling its posterior with a key of the batch's plan position
(so a resumed run draws the same latents). Captions are encoded by the text encoder on the fly. The on-the-fly
encoders see one process's rows, so they are for single-process runs.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from pyramid_jax.dit.families import normalize_latents
from pyramid_jax.dit_training.train_step import Batch
from pyramid_jax.sampling import TextConditioning
from pyramid_jax.training.data.annotations import read_annotations
from pyramid_jax.training.data.config import DataConfig, DataSource
from pyramid_jax.training.data.errors import BadFiles
from pyramid_jax.training.data.frames import to_unit_range
from pyramid_jax.training.data.pipeline import DataPipeline, HostBatch
from pyramid_jax.training.data.readers import LatentReader, TextReader, VideoReader
from pyramid_jax.training.data.source import Batches
from pyramid_jax.training.data.synthetic import synthetic_batches
from pyramid_jax.training.update import place_batch

POSTERIOR_STREAM = 0x5EED  # folded into the run's seed for the VAE posterior draws


def to_device(batch: Batch, mesh: Mesh | None) -> Batch:
    """The global batch from this process's rows: on `mesh` split by samples, or on the default device."""
    return jax.tree.map(jnp.asarray, batch) if mesh is None else place_batch(batch, mesh)


class BatchMaker:
    """`maker(host_batch, position) -> Batch`; `vae` and `text_encoder` are needed only for frames and captions."""

    def __init__(self, family: str, mesh: Mesh | None, seed: int, vae=None, text_encoder=None):
        if (vae is not None or text_encoder is not None) and jax.process_count() > 1:
            raise ValueError("on-the-fly VAE or text encoding is for single-process runs; pre-extract latents and "
                             "text features (tools/extract_*.py) to train on several hosts")
        self.family, self.mesh, self.vae, self.text_encoder = family, mesh, vae, text_encoder
        self.key = jax.random.fold_in(jax.random.key(seed), POSTERIOR_STREAM)
        self._normalize = jax.jit(functools.partial(normalize_latents, family=family))

    def __call__(self, host: HostBatch, position: int) -> Batch:
        samples, text = host
        if samples.dtype == np.uint8:
            if self.vae is None:
                raise ValueError("video frames need the VAE to encode them")
            posterior = self.vae.encode(to_unit_range(samples), temporal_chunk=True)
            samples = posterior.sample(jax.random.fold_in(self.key, position))
        if isinstance(text, tuple) and isinstance(text[0], str):
            if self.text_encoder is None:
                raise ValueError("captions need the text encoder to encode them")
            text = self.text_encoder(list(text))
        batch = to_device(Batch(samples, TextConditioning(*text)), self.mesh)
        return Batch(self._normalize(batch.latents), batch.text)


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
    pipeline = DataPipeline(read_annotations(data.annotation), reader, TextReader(data.text_features, data.text_tokens),
                            data.batch_size, seed, bad, data.read_threads, data.prefetch, log=log)
    maker = BatchMaker(family, mesh, seed, vae, text_encoder)
    return lambda start, state=None: Batches(pipeline.iterator(start, state), maker)
