"""The pyramidal autoregressive sampler: one jitted program per unit, a `lax.scan` over each stage's Euler steps.

A video is generated one unit (latent frame) at a time. Each unit runs every stage, lowest resolution first: it
starts from noise, jumps to the next stage by nearest upsampling plus block noise, and at every Euler step calls
the DiT on `[history clips..., current latent]` with classifier-free guidance (pipeline_spec.md §4).

Programs are cached by jit on (unit history length, step counts, shapes), so a video of `temp` units compiles
`temp` unit programs once, and every later video of the same size reuses them. Under a mesh the DiT parameters keep
the loader's shardings (fsdp / tensor) and every per-sample input is split along its batch rows over `data`, so
each program is one SPMD program over all devices.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from pyramid_jax.parallel.rules import LOGICAL_AXIS_RULES, shard_batch
from pyramid_jax.sampling.history import past_conditions
from pyramid_jax.sampling.noise import NoiseSource, UnitNoise
from pyramid_jax.sampling.pyramid import latent_pyramid, upsample_nearest_2x
from pyramid_jax.sampling.rounding import rounded
from pyramid_jax.sampling.scheduler import PyramidFlowScheduler, euler_step
from pyramid_jax.text.conditioning import TextConditioning

# Prompt rows go over `data` alone, not the table's ("data", "fsdp"): with that two-axis batch split and
# tensor-sharded weights, XLA (jax 0.10.2) miscompiles the DiT's gated residual `gate * (x @ W1 @ W2)` (whole rows
# come out wrong); tests/sampling/test_sharded_pipeline.py checks a mesh with all three axes.
PROMPT_RULES = (("batch", "data"),) + tuple(rule for rule in LOGICAL_AXIS_RULES if rule[0] != "batch")


def guidance_rows(positive: TextConditioning, negative: TextConditioning) -> TextConditioning:
    """`[negative; positive]` rows; a single negative row is repeated for every prompt (B rows each)."""
    batch = positive.embeds.shape[0]
    if negative.embeds.shape[0] not in (1, batch):
        raise ValueError(f"{negative.embeds.shape[0]} negative prompts for {batch} prompts; give 1 or {batch}")
    return TextConditioning(*(jnp.concatenate([jnp.broadcast_to(n, (batch,) + n.shape[1:]), p])
                              for n, p in zip(negative, positive)))


def guide(velocity: jax.Array, scale: jax.Array) -> jax.Array:
    """Classifier-free guidance on rows `[uncond; cond]`: `v_u + s (v_c - v_u)`, the product in float32."""
    uncond, cond = jnp.split(velocity, 2)
    return uncond + rounded(scale * (cond - uncond).astype(jnp.float32)).astype(velocity.dtype)


def jump_to_stage(x: jax.Array, noise: jax.Array, alpha: float, beta: float) -> jax.Array:
    """The stage jump: `alpha * Up(x) + beta * block_noise` with 2x nearest upsampling of `x [B, T, H, W, C]`."""
    return rounded(alpha * upsample_nearest_2x(x)) + rounded(beta * noise.astype(x.dtype))


def guidance_batch(x: jax.Array, guided: bool) -> jax.Array:
    """`[x; x]` with guidance (the uncond and cond rows see the same latents), else `x`."""
    return jnp.concatenate([x, x]) if guided else x


@functools.partial(jax.jit, static_argnames=("graphdef", "scheduler", "steps", "guided"))
def denoise_unit(state: nnx.State, history: tuple[jax.Array, ...], noise: UnitNoise, text: TextConditioning,
                 guidance_scale: jax.Array, *, graphdef: nnx.GraphDef, scheduler: PyramidFlowScheduler,
                 steps: tuple[int, ...], guided: bool) -> tuple[jax.Array, ...]:
    """Every stage of one unit; returns each stage's final latent `[B, 1, h_k, w_k, C]` (the last is the frame).

    `history` holds the generated frames `[B, 1, H, W, C]` so far (empty for the first frame); latents are carried
    in the text embeddings' dtype and timesteps are cast to it, like the reference.
    """
    dtype = text.embeds.dtype
    pyramid = latent_pyramid(jnp.concatenate(history, axis=1), scheduler.stages) if history else None
    x = noise.latent.astype(dtype)
    outputs = []
    for stage in range(scheduler.stages):
        if stage > 0:
            x = jump_to_stage(x, noise.block[stage - 1], *scheduler.renoise_coefficients(stage))
        conditions = [] if pyramid is None else [guidance_batch(c, guided) for c in past_conditions(pyramid, stage)]
        timesteps = jnp.asarray(scheduler.timesteps(steps[stage], stage).astype(np.float32), dtype)
        deltas = jnp.asarray(scheduler.sigma_deltas(steps[stage], stage))

        def step(x, t_delta, conditions=conditions):
            t, delta = t_delta
            current = guidance_batch(x, guided)  # the DiT's sample: one column, history clips then the current
            velocity = nnx.merge(graphdef, state)([conditions + [current]], text.embeds, text.mask, text.pooled,
                                                  jnp.full((current.shape[0],), t, dtype))[0]
            if guided:
                velocity = guide(velocity, guidance_scale)
            return euler_step(x, velocity, delta), None

        x, _ = jax.lax.scan(step, x, (timesteps, deltas))
        outputs.append(x)
    return tuple(outputs)


class PyramidSampler:
    """Generates latent videos `[B, T, H, W, C]` with a DiT; owns nothing but the split DiT, the schedule and the
    mesh (None: inputs stay where they are). A DiT used under a mesh should be loaded onto it (`load_dit(mesh=)`)."""

    def __init__(self, dit: nnx.Module, scheduler: PyramidFlowScheduler | None = None, mesh: Mesh | None = None):
        self.graphdef, self.state = nnx.split(dit)
        self.scheduler = scheduler or PyramidFlowScheduler()
        self.mesh = mesh

    def unit(self, history: Sequence[jax.Array], noise: UnitNoise, text: TextConditioning,
             steps: Sequence[int], guidance_scale: float | None) -> tuple[jax.Array, ...]:
        """One unit after the frames `history` (`[B, 1, H, W, C]` each). With a `guidance_scale` (None: no
        guidance) `text` has 2B rows `[negative; positive]`. Returns the stage results, lowest resolution first."""
        steps = tuple(int(s) for s in steps)
        if len(steps) != self.scheduler.stages or min(steps) < 1:
            raise ValueError(f"need one positive step count per stage ({self.scheduler.stages}), got {list(steps)}")
        guided = guidance_scale is not None
        rows = noise.latent.shape[0] * (2 if guided else 1)
        if text.embeds.shape[0] != rows:
            raise ValueError(f"text conditioning has {text.embeds.shape[0]} rows; {noise.latent.shape[0]} "
                             f"sample(s) {'with' if guided else 'without'} guidance need {rows}")
        inputs = (tuple(history), noise, text)
        if self.mesh is not None:
            inputs = shard_batch(inputs, self.mesh, PROMPT_RULES)
        return denoise_unit(self.state, *inputs, jnp.float32(guidance_scale if guided else 0),
                            graphdef=self.graphdef, scheduler=self.scheduler, steps=steps, guided=guided)

    def video(self, text: TextConditioning, noise: NoiseSource, temp: int, num_inference_steps: Sequence[int],
              video_num_inference_steps: Sequence[int], guidance_scale: float, video_guidance_scale: float,
              first_frame: jax.Array | None = None, callback: Callable[[int, int], None] | None = None,
              unit_guidance_scales: Sequence[float] | None = None) -> jax.Array:
        """`temp` latent frames `[B, temp, H, W, C]`.

        Text-to-video: frame 0 uses `num_inference_steps` and `guidance_scale`, later frames the `video_*` values.
        Image-to-video (`first_frame [B, 1, H, W, C]` given): frame 0 is `first_frame`, and every generated frame
        uses `video_num_inference_steps` and `video_guidance_scale` (guidance is still on iff `guidance_scale > 0`).
        `unit_guidance_scales[u]`, when given, replaces both scales for unit u (the reference's linear guidance).
        `callback(unit, temp)` runs before each generated unit. Generated unit i draws `noise(i)`.
        """
        frames = [] if first_frame is None else [first_frame.astype(text.embeds.dtype)]
        given = len(frames)
        guided = guidance_scale > 0  # the reference's switch, for both entry points
        for unit in range(len(frames), temp):
            if callback is not None:
                callback(unit, temp)
            first = unit == 0
            scale = guidance_scale if first else video_guidance_scale
            scale = scale if unit_guidance_scales is None else unit_guidance_scales[unit]
            stages = self.unit(frames, noise(unit - given), text,
                               num_inference_steps if first else video_num_inference_steps,
                               scale if guided else None)
            frames.append(stages[-1])
        return jnp.concatenate(frames, axis=1)

    @staticmethod
    def num_programs() -> int:
        """Unit programs compiled so far in this process (all samplers share the jit cache)."""
        return denoise_unit._cache_size()
