"""The pyramidal flow-matching objective (pipeline_spec.md §5): noisy DiT inputs, velocity targets and the loss.

Every column trains one stage on a coupled straight path: with the nested stage noise eps_k,
  start S_k = eps_0 (k = 0), or sigma_start_k eps_k + (1 - sigma_start_k) NearestUp2(clean_{k-1}),
  end   E_k = sigma_end_k eps_k + (1 - sigma_end_k) clean_k, or clean_K-1 for the last stage,
  x = sigma S_k + (1 - sigma) E_k at a uniformly drawn local sigma, target velocity v = S_k - E_k.
Non-AR mode trains every frame of the clip. AR (temporal-pyramid) mode trains only the last of the first n_k
frames and feeds the earlier ones as corrupted history clips at decreasing resolution.

All randomness comes from a `Randomness` object: `KeyRandomness` for training, or recorded arrays in tests.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pyramid_jax.dit.tokens import ImageTokens, StageLayout
from pyramid_jax.dit_training.columns import ColumnLayout
from pyramid_jax.dit_training.text_dropout import drop_text
from pyramid_jax.dit_training.units import PaddedUnits
from pyramid_jax.sampling import PyramidFlowScheduler, TextConditioning
from pyramid_jax.sampling.history import PaddedHistory, history_clips
from pyramid_jax.sampling.pyramid import latent_pyramid, lowest_stage_noise, upsample_nearest_2x


class Randomness(Protocol):
    """The objective's random draws, requested by role so that recorded reference draws can stand in."""

    def noise(self, shape: tuple[int, ...]) -> jax.Array:
        """Full-resolution N(0, 1) noise `[N, T, H, W, C]` for the whole batch."""

    def timestep_u(self, column: int, batch: int) -> jax.Array:
        """U(0, 1) `[B]` picking each sample's timestep in `column`."""

    def corrupt_sigma_u(self, column: int, batch: int) -> jax.Array:
        """U(0, 1) `[B]`, scaled by the corrupt ratio into each sample's history-corruption sigma."""

    def corrupt_noise(self, column: int, clip: int, shape: tuple[int, ...]) -> jax.Array:
        """N(0, 1) for history clip `clip` (oldest first) of `column`.

        Padded histories (`PaddedUnits`) call it with a traced `clip` and more frames than the clip has: frames
        `:t` of such a draw must equal the draw of `t` frames (`KeyRandomness` has this property)."""

    def text_dropout_u(self, batch: int) -> jax.Array:
        """U(0, 1) `[N]`; a caption is dropped where it is <= the dropout rate."""


@dataclasses.dataclass(frozen=True)
class KeyRandomness:
    """Draws from one PRNG key, each keyed by role, column and sample (independent of call order and batch split).

    `groups` `[B]`: for a micro-batch of an accumulated step, the position in the step's whole batch of each of its
    sample groups (the S consecutive samples that fill one row of the columns). Every micro-batch then draws what
    the whole batch draws for the same samples. None: the batch is the step's whole batch.
    """

    key: jax.Array
    groups: jax.Array | None = None

    def _group_ids(self, batch: int) -> jax.Array:
        return jnp.arange(batch) if self.groups is None else self.groups

    def _sample_ids(self, num_samples: int) -> jax.Array:
        if self.groups is None:
            return jnp.arange(num_samples)
        per_group = num_samples // self.groups.shape[0]
        return (self.groups[:, None] * per_group + jnp.arange(per_group)).reshape(-1)

    def _per_row(self, ids: jax.Array, draw: Callable, *path: int) -> jax.Array:
        """`draw(key)` for each row id, the key folded from `path` then the id: `[len(ids), ...]`."""
        base = functools.reduce(jax.random.fold_in, path, self.key)
        return jax.vmap(lambda i: draw(jax.random.fold_in(base, i)))(ids)

    def noise(self, shape):
        return self._per_row(self._sample_ids(shape[0]), lambda k: jax.random.normal(k, shape[1:]), 0)

    def timestep_u(self, column, batch):
        return self._per_row(self._group_ids(batch), jax.random.uniform, 1, column)

    def corrupt_sigma_u(self, column, batch):
        return self._per_row(self._group_ids(batch), jax.random.uniform, 2, column)

    def corrupt_noise(self, column, clip, shape):
        return self._per_row(self._group_ids(shape[0]), lambda k: jax.random.normal(k, shape[1:]), 3, column, clip)

    def text_dropout_u(self, batch):
        return self._per_row(self._sample_ids(batch), jax.random.uniform, 4)


class FlowInputs(NamedTuple):
    """What the DiT sees and what it should predict, for S columns of B samples."""

    sample: list[list[jax.Array]]  # per column: history clips (oldest first) + the noisy clip, `[B, T, H, W, C]`
    timesteps: jax.Array  # [B*S] DiT timesteps, row b*S + s
    targets: list[jax.Array]  # per column: velocity of the noisy clip `[B, T, H, W, C]`
    sigmas: list[jax.Array]  # per column: the local sigma `[B]` (the reference's "ratios")
    image_tokens: list[ImageTokens] | None = None  # per column, for padded histories (the DiT's `image_tokens`)
    loss_weights: list[jax.Array] | None = None  # per column `[B, T, H, W, 1]` (`foreground_weight`), None: plain MSE

    def dit_kwargs(self) -> dict:
        return {} if self.image_tokens is None else dict(image_tokens=self.image_tokens)


@dataclasses.dataclass(frozen=True)
class PyramidObjective:
    """The reference training configuration (`PyramidDiTForVideoGeneration` as the scripts build it).

    `foreground_weight` > 0 (not the reference's) makes the MSE a weighted mean whose positions far from their
    frame's background weigh up to `1 + foreground_weight` (`foreground_weights`): for data where a small object on
    a plain background carries what matters, as in the shapes demo.
    """

    sample_ratios: tuple[int, ...] = (1, 2, 1)
    stage_range: tuple[float, ...] = (0, 1 / 3, 2 / 3, 1)
    scheduler_gamma: float = 1 / 3
    timestep_shift: float = 1.0
    corrupt_ratio: float = 1 / 3
    text_dropout: float = 0.1
    foreground_weight: float = 0.0
    foreground_distance: float = 1.0  # RMS latent distance from the background that earns the whole extra weight

    def __post_init__(self):
        if self.foreground_weight < 0 or self.foreground_distance <= 0:
            raise ValueError("step.objective.foreground_weight must be >= 0 and step.objective.foreground_distance "
                             f"> 0; got {self.foreground_weight} and {self.foreground_distance}")

    @functools.cached_property
    def scheduler(self) -> PyramidFlowScheduler:
        return PyramidFlowScheduler(shift=self.timestep_shift, stages=self.num_stages, stage_range=self.stage_range,
                                    gamma=self.scheduler_gamma)

    @functools.cached_property
    def columns(self) -> ColumnLayout:
        return ColumnLayout.from_ratios(self.sample_ratios)

    @property
    def num_stages(self) -> int:
        return len(self.sample_ratios)

    def inputs(self, latents: jax.Array, rand: Randomness,
               units: Sequence[int] | PaddedUnits | None = None) -> FlowInputs:
        """DiT inputs and targets for normalized latents `[N, T, H, W, C]`.

        `units=None`: non-AR mode. Otherwise AR mode with `units[k]` units (latent frames) for stage k: a tuple
        (static, the exact history: one program per allocation), or `PaddedUnits` (runtime counts, each column's
        history padded to its stage's capacity with masked pad frames: one program per bucket, the same loss).
        """
        num_stages, cols, sched = self.num_stages, self.columns, self.scheduler
        pyramid = latent_pyramid(latents, num_stages)
        noise = rand.noise(latents.shape).astype(latents.dtype)
        # stage k's noise is the full noise brought down to its resolution: nested, i.i.d. unit variance
        noises = [lowest_stage_noise(noise, num_stages - k) for k in range(num_stages)]
        batch, frames_total = cols.batch_per_column(latents.shape[0]), latents.shape[1]
        padded = isinstance(units, PaddedUnits)
        sample, timesteps, targets, sigmas, weights, image_tokens, stage_tokens = [], [], [], [], [], [], {}
        for c, k in enumerate(cols.column_stages):
            timestep, sigma = draw_timesteps(sched, k, rand.timestep_u(c, batch))
            if units is None:
                num_units, frames = frames_total, slice(None)
            elif padded:
                num_units = jnp.minimum(units.counts[k], frames_total)
                frames = functools.partial(jax.lax.dynamic_slice_in_dim, start_index=num_units - 1, slice_size=1,
                                           axis=1)
            else:
                num_units = min(units[k], frames_total)
                frames = slice(num_units - 1, num_units)

            def cut(x, frames=frames):
                return frames(x) if callable(frames) else x[:, frames]

            def level(i):
                return cut(cols.column(pyramid[i], c))

            eps, clean = cut(cols.column(noises[k], c)), level(k)
            s0, s1 = sched.start_sigmas[k], sched.end_sigmas[k]
            start = eps if k == 0 else s0 * eps + (1 - s0) * upsample_nearest_2x(level(k - 1))
            end = clean if k == num_stages - 1 else s1 * eps + (1 - s1) * clean
            r = sigma[:, None, None, None, None]
            clips = [r * start + (1 - r) * end]
            if padded:
                history = self._padded_history(pyramid, rand, c, k, num_units, units.capacities[k])
                clips = history + clips
                if k not in stage_tokens:  # one object per stage: the DiT runs a stage's columns as one batch
                    layout = StageLayout.from_clips(clips, batch, clips[-1].shape[-1], c)
                    stage_tokens[k] = ImageTokens.leading_pad(layout, units.capacities[k] - (num_units - 1))
                image_tokens.append(stage_tokens[k])
            elif units is not None:
                clips = self._history(pyramid, rand, c, k, num_units) + clips
            sample.append(clips)
            timesteps.append(timestep)
            targets.append(start - end)
            sigmas.append(sigma)
            if self.foreground_weight > 0:
                weights.append(foreground_weights(clean, self.foreground_weight, self.foreground_distance))
        return FlowInputs(sample, cols.interleave(timesteps), targets, sigmas, image_tokens if padded else None,
                          weights or None)

    def _corruption_sigma(self, rand: Randomness, column: int, batch: int) -> jax.Array:
        return (rand.corrupt_sigma_u(column, batch) * self.corrupt_ratio)[:, None, None, None, None]

    def _history(self, pyramid, rand: Randomness, column: int, stage: int, num_units: int) -> list[jax.Array]:
        """Column `column`'s history clips, each corrupted toward noise by one per-sample sigma ~ U(0, ratio)."""
        layout = history_clips(num_units - 1, stage)
        if not layout:
            return []
        sigma = self._corruption_sigma(rand, column, pyramid[0].shape[0] // self.columns.num_columns)
        out = []
        for j, clip in enumerate(layout):
            clean = self.columns.column(pyramid[clip.level], column)[:, clip.start:clip.stop]
            noise = rand.corrupt_noise(column, j, clean.shape).astype(clean.dtype)
            out.append(sigma * noise + (1 - sigma) * clean)
        return out

    def _padded_history(self, pyramid, rand: Randomness, column: int, stage: int, num_units: jax.Array,
                        capacity: int) -> list[jax.Array]:
        """`_history` for `num_units` (traced) units, padded to `capacity` frames (`PaddedHistory`): the real
        frames hold the same values and draw the same noise (the unpadded clip's draw, moved to the padded clip's
        end), the leading pad frames are zeros."""
        if capacity == 0:
            return []
        if not jax.config.jax_threefry_partitionable:  # else a longer draw does not begin with the shorter one
            raise ValueError("padded AR histories (loop.bucket_units) need jax_threefry_partitionable on (JAX's "
                             "default); turn it back on or set loop.bucket_units=false")
        plan = PaddedHistory(capacity, stage)
        frames = num_units - 1
        sigma = self._corruption_sigma(rand, column, pyramid[0].shape[0] // self.columns.num_columns)
        source, real = jnp.asarray(plan.source)[frames], jnp.asarray(plan.real)[frames]
        out = []
        for p, clip in enumerate(plan.clips):
            level = self.columns.column(pyramid[clip.level], column)
            # the padded timeline is `capacity - frames` zero frames, then the video's: frame t is timeline[t + frames]
            timeline = jnp.concatenate([jnp.zeros((level.shape[0], capacity, *level.shape[2:]), level.dtype), level],
                                       axis=1)
            length = clip.stop - clip.start
            clean = jax.lax.dynamic_slice_in_dim(timeline, clip.start + frames, length, axis=1)
            lead = length - real[p]  # pad frames at the clip's start
            draw = rand.corrupt_noise(column, jnp.maximum(source[p], 0), clean.shape).astype(clean.dtype)
            is_real = (jnp.arange(length) >= lead)[None, :, None, None, None]
            noise = jnp.where(is_real, jnp.roll(draw, lead, axis=1), 0)
            out.append(sigma * noise + (1 - sigma) * clean)
        return out

    def loss(self, dit: Callable, latents: jax.Array, text: TextConditioning, rand: Randomness,
             units: Sequence[int] | None = None, null_text: TextConditioning | None = None) -> jax.Array:
        """Flow-matching loss of `dit` on one batch; `null_text` (the "" encoding) enables caption dropout."""
        inputs = self.inputs(latents, rand, units)
        if null_text is not None:
            text = drop_text(text, null_text, rand.text_dropout_u(latents.shape[0]), self.text_dropout)
        preds = dit(inputs.sample, *text, inputs.timesteps, **inputs.dit_kwargs())
        return flow_matching_loss(preds, inputs.targets, inputs.loss_weights)


def draw_timesteps(scheduler: PyramidFlowScheduler, stage: int, u: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Uniform timestep sampling: (DiT timestep, local sigma) float32 `[B]` of `stage` for uniforms `u [B]`.

    The index `clamp(floor(N u), 0, N - 1)` picks from the stage's `timesteps_per_stage` / `sigmas_per_stage`.
    """
    n = scheduler.num_train_timesteps
    index = jnp.clip(jnp.floor(u.astype(jnp.float32) * n).astype(jnp.int32), 0, n - 1)
    timesteps = jnp.asarray(scheduler.timesteps_per_stage[stage], jnp.float32)
    sigmas = jnp.asarray(scheduler.sigmas_per_stage[stage].astype(np.float32))
    return timesteps[index], sigmas[index]


def foreground_weights(clean: jax.Array, weight: float, distance: float) -> jax.Array:
    """Loss weights `[B, T, H, W, 1]` of clean latents `[B, T, H, W, C]`: `1 + weight * min(d / distance, 1)`, with d
    the RMS over channels of a position's distance from its frame's background, taken as the frame's per-channel
    median over positions (right where the object covers under half of the frame)."""
    b, t, h, w, c = clean.shape
    background = jnp.median(clean.reshape(b, t, h * w, c).astype(jnp.float32), axis=2)[:, :, None, None]
    d = jnp.sqrt(jnp.mean(jnp.square(clean.astype(jnp.float32) - background), axis=-1, keepdims=True))
    return 1 + weight * jnp.minimum(d / distance, 1)


def flow_matching_loss(preds: Sequence[jax.Array], targets: Sequence[jax.Array],
                       weights: Sequence[jax.Array] | None = None) -> jax.Array:
    """MSE in float32: averaged per sample over its trainable clip, then over every sample of every column.

    `weights` (per column, broadcast over channels): each sample's mean is weighted by them; None: the plain mean
    (the reference's)."""
    per_sample = []
    for i, (p, t) in enumerate(zip(preds, targets)):
        square = jnp.square(p.astype(jnp.float32) - t.astype(jnp.float32))
        if weights is None:
            per_sample.append(jnp.mean(square.reshape(p.shape[0], -1), axis=1))
        else:
            w = jnp.broadcast_to(weights[i], square.shape)
            per_sample.append(jnp.sum((w * square).reshape(p.shape[0], -1), axis=1)
                              / jnp.sum(w.reshape(p.shape[0], -1), axis=1))
    return jnp.mean(jnp.concatenate(per_sample))
