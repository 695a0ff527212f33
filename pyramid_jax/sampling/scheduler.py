"""The pyramidal flow-matching schedule: stage ranges, per-stage timesteps and sigmas, renoise, Euler update.

Sigma is the noise coefficient: `x = sigma * noise + (1 - sigma) * signal`, run from 1 to 0 across the stages
(pipeline_spec.md §3). Every table is computed host-side in numpy with the reference's dtypes (float32 where it
builds torch float32 tensors, float64 where it uses Python floats or numpy defaults), so the numbers are
bit-identical to it; nothing here is traced.
"""

from __future__ import annotations

import dataclasses
import math
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np

from pyramid_jax.sampling.rounding import rounded

@dataclasses.dataclass(frozen=True)
class PyramidFlowScheduler:
    """Flow matching over `stages` resolution stages; stage k covers the global span `stage_range[k:k+2]`.

    Each later stage starts from the previous stage's end point, upsampled and renoised with 2x2 block noise,
    which raises its start sigma from `ori_start_sigmas[k]` to the gamma-corrected `start_sigmas[k]`.
    """

    num_train_timesteps: int = 1000
    shift: float = 1.0
    stages: int = 3
    stage_range: tuple[float, ...] = (0, 1 / 3, 2 / 3, 1)
    gamma: float = 1 / 3

    def __post_init__(self):
        if len(self.stage_range) != self.stages + 1:
            raise ValueError(f"stage_range needs stages + 1 = {self.stages + 1} points, got {self.stage_range}")
        if not 0 < self.gamma <= 1 / 3:
            raise ValueError(f"gamma must be in (0, 1/3] for the block-noise covariance to be valid, got {self.gamma}")

    # -- the global grid (float32, as the reference's torch tensors) --------------------------------------------

    @cached_property
    def global_sigmas(self) -> np.ndarray:
        """`[N]` float32: (N - j) / N for j = 0..N-1, i.e. 1 down to 1/N, then the SD3 shift."""
        n = self.num_train_timesteps
        t = np.linspace(1, n, n, dtype=np.float32)[::-1].copy()
        sigmas = t / np.float32(n)
        return (self.shift * sigmas / (1 + (self.shift - 1) * sigmas)).astype(np.float32)

    @cached_property
    def global_timesteps(self) -> np.ndarray:
        """`[N]` float32: N * sigma."""
        return (self.global_sigmas * np.float32(self.num_train_timesteps)).astype(np.float32)

    @property
    def sigma_min(self) -> float:
        return float(self.global_sigmas[-1])

    @property
    def sigma_max(self) -> float:
        return float(self.global_sigmas[0])

    # -- stage endpoints (Python floats, as the reference) ------------------------------------------------------

    def _stage_indices(self, stage: int) -> tuple[int, int]:
        n = self.num_train_timesteps
        return max(int(self.stage_range[stage] * n), 0), min(int(self.stage_range[stage + 1] * n), n)

    @cached_property
    def ori_start_sigmas(self) -> tuple[float, ...]:
        """Global sigma where each stage's span begins, before the renoise correction."""
        return tuple(float(self.global_sigmas[self._stage_indices(k)[0]]) for k in range(self.stages))

    @cached_property
    def end_sigmas(self) -> tuple[float, ...]:
        ends = []
        for k in range(self.stages):
            end = self._stage_indices(k)[1]
            ends.append(float(self.global_sigmas[end]) if end < self.num_train_timesteps else 0.0)
        return tuple(ends)

    def renoise_alpha(self, stage: int) -> float:
        """Signal scale at the jump into `stage` > 0: `1 / (sqrt(1 + 1/gamma) (1 - o) + o)`, o = 1 - ori sigma."""
        o = 1 - self.ori_start_sigmas[stage]
        return 1 / (math.sqrt(1 + (1 / self.gamma)) * (1 - o) + o)

    def renoise_coefficients(self, stage: int) -> tuple[float, float]:
        """(alpha, beta) of the jump into `stage` > 0: `x <- alpha * Up(x) + beta * block_noise`.

        beta cancels the 2x2 correlation nearest upsampling gives the old noise, so the result lies on the
        stage's flow path at `start_sigmas[stage]` with i.i.d. noise (pipeline_spec.md §4b).
        """
        if not 0 < stage < self.stages:
            raise ValueError(f"renoising happens at the jumps into stages 1..{self.stages - 1}, not stage {stage}")
        o = 1 - self.ori_start_sigmas[stage]
        alpha = self.renoise_alpha(stage)
        return alpha, alpha * (1 - o) / math.sqrt(self.gamma)

    @cached_property
    def start_sigmas(self) -> tuple[float, ...]:
        """The sigma each stage really starts at: 1 - alpha * o after the renoise jump (stage 0: 1)."""
        starts = [self.ori_start_sigmas[0]]
        for k in range(1, self.stages):
            o = 1 - self.ori_start_sigmas[k]
            starts.append(1 - self.renoise_alpha(k) * o)
        return tuple(starts)

    @cached_property
    def timestep_ratios(self) -> tuple[tuple[float, float], ...]:
        """(start, end) fraction of the total flow length covered by each stage; these place its timesteps."""
        lengths = [s - e for s, e in zip(self.start_sigmas, self.end_sigmas)]
        total = sum(lengths)
        ratios = []
        for k in range(self.stages):
            start = 0.0 if k == 0 else sum(lengths[:k]) / total
            end = 1.0 if k == self.stages - 1 else sum(lengths[:k + 1]) / total
            ratios.append((start, end))
        return tuple(ratios)

    # -- per-stage tables ---------------------------------------------------------------------------------------

    @cached_property
    def timesteps_per_stage(self) -> tuple[np.ndarray, ...]:
        """`[N]` float32 per stage: DiT timesteps from the stage's first to (just before) its last global step."""
        n = self.num_train_timesteps
        tables = []
        for start, end in self.timestep_ratios:
            t_max = self.global_timesteps[int(start * n)]
            t_min = self.global_timesteps[min(int(end * n), n - 1)]
            tables.append(np.linspace(t_max, t_min, n + 1)[:-1])
        return tuple(tables)

    @cached_property
    def sigmas_per_stage(self) -> tuple[np.ndarray, ...]:
        """`[N]` float64 per stage: the local sigma, 1 down to 1/N (the same for every stage)."""
        local = np.linspace(1, 0, self.num_train_timesteps + 1)[:-1]
        return tuple(local for _ in range(self.stages))

    def timesteps(self, num_steps: int, stage: int) -> np.ndarray:
        """`[num_steps]` float64 DiT timesteps of `stage` for `num_steps` Euler steps (`set_timesteps`)."""
        self._check(num_steps, stage)
        table = self.timesteps_per_stage[stage]
        return np.linspace(float(table[0]), float(table[-1]), num_steps)

    def sigmas(self, num_steps: int, stage: int) -> np.ndarray:
        """`[num_steps + 1]` float64 local sigmas of `stage`: 1 down to 1/N, then a final 0."""
        self._check(num_steps, stage)
        table = self.sigmas_per_stage[stage]
        return np.append(np.linspace(float(table[0]), float(table[-1]), num_steps), 0.0)

    def sigma_deltas(self, num_steps: int, stage: int) -> np.ndarray:
        """`[num_steps]` float32 `sigma[i+1] - sigma[i]`, the Euler step sizes (float64 difference, then float32)."""
        return np.diff(self.sigmas(num_steps, stage)).astype(np.float32)

    def _check(self, num_steps: int, stage: int) -> None:
        if not 0 <= stage < self.stages:
            raise ValueError(f"stage must be in 0..{self.stages - 1}, got {stage}")
        if int(num_steps) != num_steps or num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer, got {num_steps}")


def euler_step(x: jax.Array, velocity: jax.Array, sigma_delta: jax.Array) -> jax.Array:
    """`x + (sigma_next - sigma) * v` in float32, returned in the velocity's dtype.

    `sigma_delta` is a float32 scalar. With a bf16 velocity the product is rounded to bf16 before the float32 add,
    as torch does for a bf16 tensor times a float scalar; then the result is stored back in bf16.
    """
    update = rounded(sigma_delta * velocity.astype(jnp.float32)).astype(velocity.dtype)
    return (x.astype(jnp.float32) + update.astype(jnp.float32)).astype(velocity.dtype)
