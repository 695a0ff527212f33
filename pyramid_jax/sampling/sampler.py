"""The pyramidal autoregressive sampler: one jitted program per history bucket, a `lax.scan` over each stage's
Euler steps.

A video is generated one unit (latent frame) at a time. Each unit runs every stage, lowest resolution first: it
starts from noise, jumps to the next stage by nearest upsampling plus block noise, and at every Euler step calls
the DiT on `[history clips..., current latent]` with classifier-free guidance (pipeline_spec.md §4).

Programs are compiled once per process (`parallel/compiled.py`) for each (history capacity, step counts, shapes).
A unit's history is padded to its bucket's capacity (`sampling/buckets.py`) with masked pad frames whose count is a
runtime input, so a video of `temp` units compiles one first-unit program and about `log2(temp) - 1` history
programs once (4 for temp 16, 5 for temp 31), and every later video of the same size reuses them. The text is
cut to the few lengths of `text_bucket` (only its trailing padding goes, which no output depends on), so most
prompts share those programs too, and the DiT pays for the positions prompts use, not all 128. Under a mesh the
DiT parameters are placed by the rule table (fsdp / tensor; a DiT loaded onto the mesh stays where it is), the
programs are traced on the mesh (the DiT's logical-axis constraints apply), rows are split over `data` x `fsdp`
(padded with repeated samples to a multiple of it) and tokens over `sequence` (padded with masked tokens, see
`dit/inputs.py`), so each program is one SPMD program whose per-device memory falls with the devices.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
from typing import Callable, ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from pyramid_jax.dit.tokens import ImageTokens, StageLayout
from pyramid_jax.parallel.compiled import ModelProgram, PlacedModel
from pyramid_jax.parallel.rules import axis_multiple
from pyramid_jax.sampling.buckets import bucket_capacity, history_buckets
from pyramid_jax.sampling.finite import FiniteCheck
from pyramid_jax.sampling.history import past_conditions
from pyramid_jax.sampling.noise import NoiseSource, UnitNoise
from pyramid_jax.sampling.pyramid import latent_pyramid, upsample_nearest_2x
from pyramid_jax.sampling.rounding import rounded
from pyramid_jax.sampling.scheduler import PyramidFlowScheduler, euler_step
from pyramid_jax.text.conditioning import TextConditioning, cut_text, text_bucket


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


@functools.partial(ModelProgram, static_argnames=("scheduler", "steps", "guided"))
def denoise_unit(dit: nnx.Module, history: tuple[jax.Array, ...], noise: UnitNoise, text: TextConditioning,
                 guidance_scale: jax.Array, pad_frames: jax.Array | None, *, scheduler: PyramidFlowScheduler,
                 steps: tuple[int, ...], guided: bool) -> tuple[jax.Array, ...]:
    """Every stage of one unit; returns each stage's final latent `[B, 1, h_k, w_k, C]` (the last is the frame).

    `history` holds the generated frames `[B, 1, H, W, C]` so far (empty for the first frame); latents are carried
    in the text embeddings' dtype and timesteps are cast to it, like the reference. `pad_frames` (an int32 scalar,
    or None for none) says how many leading history frames are padding: the DiT masks them out and gives the real
    tokens their unpadded frame ids, so every pad count shares this program.
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

        tokens = {}
        if pad_frames is not None:
            clips = conditions + [guidance_batch(x, guided)]
            layout = StageLayout.from_clips(clips, clips[0].shape[0], x.shape[-1], stage)
            tokens = dict(image_tokens=[ImageTokens.leading_pad(layout, pad_frames, real_history=True)])

        def step(x, t_delta, conditions=conditions, tokens=tokens):
            t, delta = t_delta
            current = guidance_batch(x, guided)  # the DiT's sample: one column, history clips then the current
            velocity = dit([conditions + [current]], text.embeds, text.mask, text.pooled,
                           jnp.full((current.shape[0],), t, dtype), **tokens)[0]
            if guided:
                velocity = guide(velocity, guidance_scale)
            return euler_step(x, velocity, delta), None

        x, _ = jax.lax.scan(step, x, (timesteps, deltas))
        outputs.append(x)
    return tuple(outputs)


def pad_batch(history: tuple[jax.Array, ...], noise: UnitNoise, text: TextConditioning, guided: bool,
              mesh: Mesh | None) -> tuple:
    """Samples repeated (the last one) until the DiT's rows (2B with guidance) split evenly over the mesh axes of
    `batch`: a batch they do not divide would otherwise be replicated. Pad results are dropped by the caller.
    Without a mesh, the inputs as they are."""
    if mesh is None:
        return history, noise, text
    shards = axis_multiple("batch", mesh)
    batch = noise.latent.shape[0]
    rows = 2 if guided else 1
    extra = next(e for e in range(shards) if (batch + e) * rows % shards == 0)
    if extra == 0:
        return history, noise, text

    def grow(x):
        return jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)])

    def grow_rows(x):  # the text rows: [negative; positive] halves with guidance
        return jnp.concatenate([grow(h) for h in jnp.split(x, rows)])

    return (tuple(map(grow, history)), jax.tree.map(grow, noise), TextConditioning(*map(grow_rows, text)))


@dataclasses.dataclass(frozen=True)
class UnitProgram:
    """A `denoise_unit` call: the placed model, inputs and static options; `batch` samples before `pad_batch`."""

    model: PlacedModel
    inputs: tuple
    options: dict
    batch: int

    compiled: ClassVar[set] = set()  # keys of the programs compiled in this process

    @property
    def key(self) -> tuple:
        """What selects the compiled program: the model's graph, the inputs' shapes, dtypes and placements, and the
        options."""
        leaves = tuple((x.shape, x.dtype, getattr(x, "sharding", None)) for x in jax.tree.leaves(self.inputs))
        return self.model.graphdef, leaves, tuple(self.options.items())

    def compile(self) -> None:
        denoise_unit.lower(self.model, *self.inputs, **self.options).compile()
        self.compiled.add(self.key)


class AheadOfTime:
    """Compiles unit programs on a background thread while a unit runs, so that only the first program's compile
    stands between the user and the video: a running XLA program leaves the host's Python thread (and on a CPU
    backend part of the cores) free. `wait(key)` before running a program that may be compiling."""

    def __init__(self):
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="unit-compile")
        self._pending: dict[tuple, concurrent.futures.Future] = {}

    def compile(self, programs: Callable[[], list[UnitProgram]]) -> None:
        """Compiles, in order, each of `programs()` (built on the background thread) not compiled yet."""

        def build() -> None:
            for program in programs():
                if program.key not in UnitProgram.compiled and program.key not in self._pending:
                    self._pending[program.key] = self._pool.submit(program.compile)

        self._pending[()] = self._pool.submit(build)

    def wait(self, key: tuple) -> None:
        """Returns when the program `key` is not being compiled here (re-raising the compile's error, if any)."""
        self._pending.pop((), _DONE).result()
        self._pending.pop(key, _DONE).result()

    def __enter__(self) -> AheadOfTime:
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(cancel_futures=True)


_DONE = concurrent.futures.Future()
_DONE.set_result(None)


class PyramidSampler:
    """Generates latent videos `[B, T, H, W, C]` with a DiT; owns nothing but the DiT placed on the mesh (None:
    inputs stay where they are), and the schedule. A DiT loaded onto the mesh (`load_dit(mesh=)`) is used in place.

    `pad_history=False` gives every unit its exact, unpadded history (one program per unit; the DiT then needs no
    `image_tokens` argument)."""

    def __init__(self, dit: nnx.Module, scheduler: PyramidFlowScheduler | None = None, mesh: Mesh | None = None,
                 pad_history: bool = True):
        self.dit = PlacedModel(dit, mesh)
        self.scheduler = scheduler or PyramidFlowScheduler()
        self.pad_history = pad_history

    def unit(self, history: Sequence[jax.Array], noise: UnitNoise, text: TextConditioning,
             steps: Sequence[int], guidance_scale: float | None,
             history_capacity: int | None = None) -> tuple[jax.Array, ...]:
        """One unit after the frames `history` (`[B, 1, H, W, C]` each). With a `guidance_scale` (None: no
        guidance) `text` has 2B rows `[negative; positive]`. Returns the stage results, lowest resolution first.

        `history_capacity` (>= `len(history)`; None: no padding) pads the history with leading masked frames to
        that many, so units of one bucket share a program; the results equal the unpadded ones."""
        return self._run(self._unit_program(history, noise, text, steps, guidance_scale, history_capacity))

    def _unit_program(self, history, noise, text, steps, guidance_scale, history_capacity) -> UnitProgram:
        """`unit`'s arguments checked, padded and placed."""
        steps = tuple(int(s) for s in steps)
        if len(steps) != self.scheduler.stages or min(steps) < 1:
            raise ValueError(f"need one positive step count per stage ({self.scheduler.stages}), got {list(steps)}")
        guided = guidance_scale is not None
        rows = noise.latent.shape[0] * (2 if guided else 1)
        if text.embeds.shape[0] != rows:
            raise ValueError(f"text conditioning has {text.embeds.shape[0]} rows; {noise.latent.shape[0]} "
                             f"sample(s) {'with' if guided else 'without'} guidance need {rows}")
        history, pad_frames = tuple(history), None
        if history_capacity is not None and history:
            if history_capacity < len(history):
                raise ValueError(f"history_capacity {history_capacity} is smaller than the {len(history)} frames")
            pad_frames = jnp.int32(history_capacity - len(history))
            history = (jnp.zeros_like(history[0]),) * (history_capacity - len(history)) + history
        inputs = self.dit.place(pad_batch(history, noise, text, guided, self.dit.mesh))
        return UnitProgram(self.dit, (*inputs, jnp.float32(guidance_scale if guided else 0), pad_frames),
                           dict(scheduler=self.scheduler, steps=steps, guided=guided), noise.latent.shape[0])

    def _run(self, program: UnitProgram) -> tuple[jax.Array, ...]:
        stages = denoise_unit(self.dit, *program.inputs, **program.options)
        UnitProgram.compiled.add(program.key)
        return stages if stages[0].shape[0] == program.batch else tuple(x[:program.batch] for x in stages)

    def video(self, text: TextConditioning, noise: NoiseSource, temp: int, num_inference_steps: Sequence[int],
              video_num_inference_steps: Sequence[int], guidance_scale: float, video_guidance_scale: float,
              history: jax.Array | None = None, callback: Callable[[int, int], None] | None = None,
              unit_guidance_scales: Sequence[float] | None = None, window: int | None = None,
              on_unit: Callable[[jax.Array], None] | None = None) -> jax.Array:
        """`temp` latent frames `[B, temp, H, W, C]`.

        Text-to-video: frame 0 uses `num_inference_steps` and `guidance_scale`, later frames the `video_*` values.
        Given `history` `[B, T0, H, W, C]` (image-to-video: the image latent; extension: a clip's latents), those are
        the first T0 frames, and every generated frame uses `video_num_inference_steps` and `video_guidance_scale`
        (guidance is still on iff `guidance_scale > 0`). `unit_guidance_scales[u]`, when given, replaces both scales
        for unit u (the reference's linear guidance). `window` (None: unbounded) caps the latent frames the DiT sees
        per unit, history and the unit together: older frames drop out, so past `window` units the token count and
        the program stay the same. `callback(unit, temp)` runs before each generated unit, `on_unit(video so far)`
        after it (e.g. to save progress). Generated unit i draws `noise(i)`. Histories are padded to
        `history_buckets` of the frames the DiT sees (unless `pad_history` is off). The text is cut to
        `text_bucket` positions (its trailing padding, which changes no output). While the first unit runs, the
        later units' programs not yet compiled in this process compile on a background thread. Latents that turn
        NaN or infinite raise `NonFiniteError` naming the unit.
        """
        text = cut_text(text, text_bucket(text.mask))
        frames = [] if history is None else list(jnp.split(history.astype(text.embeds.dtype), history.shape[1], 1))
        buckets = history_buckets(temp if window is None else min(temp, window))
        given = len(frames)
        guided = guidance_scale > 0  # the reference's switch, for both entry points

        def frames_seen(count: int) -> int:
            """Of `count` earlier frames, how many the DiT sees (the latest ones)."""
            return count if window is None else min(count, window - 1)

        def program(unit: int, history: list[jax.Array], unit_noise: UnitNoise) -> UnitProgram:
            first = unit == 0
            scale = guidance_scale if first else video_guidance_scale
            scale = scale if unit_guidance_scales is None else unit_guidance_scales[unit]
            seen = history[len(history) - frames_seen(len(history)):]
            return self._unit_program(seen, unit_noise, text,
                                      num_inference_steps if first else video_num_inference_steps,
                                      scale if guided else None,
                                      bucket_capacity(len(seen), buckets) if self.pad_history else None)

        def later_programs(unit_noise: UnitNoise, frame: jax.Array) -> list[UnitProgram]:
            """The programs of the units after the running one, on stand-in inputs of the same shapes: one per
            history length the DiT gets (a bucket's capacity), as the units of one bucket share a program."""
            first_unit_of_length: dict[int, int] = {}
            for unit in range(given + 1, temp):
                seen = frames_seen(unit)
                first_unit_of_length.setdefault(bucket_capacity(seen, buckets) if self.pad_history else seen, unit)
            return [program(unit, [jnp.zeros_like(frame)] * unit, unit_noise)
                    for unit in first_unit_of_length.values()]

        check_finite = FiniteCheck()
        with AheadOfTime() as ahead:
            for unit in range(given, temp):
                if callback is not None:
                    callback(unit, temp)
                unit_noise = noise(unit - given)
                current = program(unit, frames, unit_noise)
                ahead.wait(current.key)
                stages = self._run(current)
                if unit == given:
                    ahead.compile(functools.partial(later_programs, unit_noise, stages[-1]))
                frames.append(stages[-1])
                check_finite(stages[-1], unit)
                if on_unit is not None:
                    on_unit(jnp.concatenate(frames, axis=1))
        check_finite.done()
        return jnp.concatenate(frames, axis=1)

    @staticmethod
    def num_programs() -> int:
        """Unit programs compiled so far in this process (all samplers share them)."""
        return denoise_unit.num_programs()
