"""The pyramidal sampler against the reference's recorded runs (tests/fixtures/sampler), fp32.

Two levels: with the DiT replaced by the reference's recorded DiT outputs, every DiT input and the output latents
are bit-identical (the sampler's own arithmetic is exact); with our DiT, the latents agree to the DiT's precision.
"""

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import pyramid_jax
import pyramid_jax.layers.attention as attention_module
from pyramid_jax.sampling.history import past_conditions
from pyramid_jax.sampling.noise import UnitNoise
from pyramid_jax.sampling.pyramid import latent_pyramid
from pyramid_jax.sampling.sampler import (PyramidSampler, TextConditioning, guidance_batch, guidance_rows,
                                          jump_to_stage)

from conftest import FIXTURES, ncthw_to_cl
from replay import MAX_REL, CallLog, ReplayDiT, load_run, recorded_calls, run_recorded

RUNS = {"t2v": "miniflux_tiny", "t2i": "miniflux_tiny", "i2v": "miniflux_tiny", "sd3_t2v": "sd3_tiny"}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_replayed_dit_gives_bit_identical_inputs_and_latents(run):
    npz, call, text, noise = load_run(run)
    calls, log = recorded_calls(npz), CallLog()
    out = run_recorded(PyramidSampler(ReplayDiT(calls, log), pad_history=False), npz, call, text, noise)
    jax.effects_barrier()
    np.testing.assert_array_equal(np.asarray(out), ncthw_to_cl(npz["output_latents"]))
    assert len(log.calls) == len(calls)
    for i, ((clips, t), (ref_clips, ref_t, _)) in enumerate(zip(log.calls, calls)):
        assert [c.shape for c in clips] == [c.shape for c in ref_clips], f"call {i}"
        for c, ref in zip(clips, ref_clips):
            np.testing.assert_array_equal(c, ref, err_msg=f"call {i}")
        np.testing.assert_array_equal(t, ref_t, err_msg=f"call {i}")


@pytest.mark.parametrize("run", ["t2v", "sd3_t2v", "i2v"])
def test_past_conditions_are_the_recorded_ones(run):
    npz = np.load(FIXTURES / "sampler" / f"{run}.npz")
    video = jnp.asarray(ncthw_to_cl(npz["output_latents"]))
    for unit in (1, 2):
        pyramid = latent_pyramid(video[:, :unit], 3)
        for stage in range(3):
            ours = [guidance_batch(c, guided=True) for c in past_conditions(pyramid, stage)]
            ref = [ncthw_to_cl(npz[k]) for k in sorted(npz.files)
                   if k.startswith(f"units/u{unit}/past_conditions/s{stage}/")]
            assert len(ours) == len(ref)
            for c, r in zip(ours, ref):
                np.testing.assert_array_equal(np.asarray(c), r)


def test_unit1_stage2_dit_inputs_are_the_recorded_ones():
    """Renoise into stage 2, history assembly, CFG doubling and timestep of the first unit-1 stage-2 DiT call."""
    from pyramid_jax.sampling.scheduler import PyramidFlowScheduler

    run = np.load(FIXTURES / "sampler" / "t2v.npz")
    call = np.load(FIXTURES / "sampler" / "t2v_unit1_stage2_first_dit_call.npz")
    sched = PyramidFlowScheduler()
    x = jump_to_stage(jnp.asarray(ncthw_to_cl(run["units/u1/stage1_output"])),
                      jnp.asarray(ncthw_to_cl(run["rng/004_block_noise"])), *sched.renoise_coefficients(2))
    history = latent_pyramid(jnp.asarray(ncthw_to_cl(run["output_latents"][:, :, :1])), 3)
    clips = [guidance_batch(c, guided=True) for c in past_conditions(history, 2) + [x]]
    assert len(clips) == 2
    for j, clip in enumerate(clips):
        np.testing.assert_array_equal(np.asarray(clip), ncthw_to_cl(call[f"sample/s0/c{j}"]))
    np.testing.assert_array_equal(np.float32(sched.timesteps(2, 2)[0]), call["timestep_ratio"])
    for k in ("encoder_hidden_states", "encoder_attention_mask", "pooled_projections"):
        np.testing.assert_array_equal(run[f"dit_text/{k}"], call[k])


@pytest.fixture(scope="module")
def samplers():
    path = FIXTURES / "snapshots" / "{}" / "diffusion_transformer_384p"
    return {name: PyramidSampler(pyramid_jax.load_dit(str(path).format(name))) for name in set(RUNS.values())}


def test_with_our_dit_latents_match_the_reference(samplers):
    """All four runs (histories padded to buckets); t2i and i2v reuse the t2v unit programs (same shapes)."""
    before = PyramidSampler.num_programs()
    for run in ("t2v", "t2i", "i2v", "sd3_t2v"):
        npz, call, text, noise = load_run(run)
        ref = ncthw_to_cl(npz["output_latents"])
        out = np.asarray(run_recorded(samplers[RUNS[run]], npz, call, text, noise))
        assert out.shape == ref.shape
        np.testing.assert_array_less(np.abs(out - ref).max(), MAX_REL * np.abs(ref).max(), err_msg=run)
    assert PyramidSampler.num_programs() - before <= 4  # per DiT: a first-unit program and one history bucket


@pytest.mark.parametrize("run", ["t2v", "sd3_t2v"])
def test_padded_history_equals_the_unpadded_one(samplers, run):
    """Units after 1 and 2 frames, their histories padded by 1 to 3 masked frames: the same stage results."""
    npz, call, text, noise = load_run(run)
    sampler = samplers[RUNS[run]]
    frames = [jnp.asarray(ncthw_to_cl(npz["output_latents"][:, :, u:u + 1])) for u in range(2)]
    for unit, capacity in ((1, 4), (2, 3), (2, 5)):
        args = (frames[:unit], noise(unit), text, [1, 1, 1], 5.0)
        exact = sampler.unit(*args)
        padded = sampler.unit(*args, history_capacity=capacity)
        for k, (a, b) in enumerate(zip(exact, padded)):
            a, b = np.asarray(a), np.asarray(b)
            assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max(), f"unit {unit}, capacity {capacity}, stage {k}"


@pytest.mark.parametrize("run", ["t2v", "sd3_t2v"])
def test_chunked_attention_skipping_the_current_clip_equals_the_dense_run(samplers, run, monkeypatch):
    """The `chunked` backend takes the sampler's promise that no history clip sees a later one and the text no
    current clip (`TokenMask.key_limits`, from the padded history's real frames) and skips those keys: the padded
    units equal the dense unpadded ones."""
    limits = []
    chunked = attention_module.ATTENTION_BACKENDS["chunked"]
    monkeypatch.setitem(attention_module.ATTENTION_BACKENDS, "chunked", chunked._replace(
        fn=lambda q, k, v, mask, *args: limits.append(mask.key_limits) or chunked.fn(q, k, v, mask, *args)))
    path = FIXTURES / "snapshots" / RUNS[run] / "diffusion_transformer_384p"
    sampler = PyramidSampler(pyramid_jax.load_dit(str(path), attention_backend="chunked"))
    npz, call, text, noise = load_run(run)
    frames = [jnp.asarray(ncthw_to_cl(npz["output_latents"][:, :, u:u + 1])) for u in range(2)]
    for unit, capacity in ((1, 3), (2, 3)):
        args = (frames[:unit], noise(unit), text, [1, 1, 1], 5.0)
        dense = samplers[RUNS[run]].unit(*args)
        for k, (a, b) in enumerate(zip(dense, sampler.unit(*args, history_capacity=capacity))):
            a, b = np.asarray(a), np.asarray(b)
            assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max(), f"unit {unit}, capacity {capacity}, stage {k}"
    assert max(map(len, limits)) > 2  # keys were skipped for the text and for more than one history clip


def test_with_our_dit_stage_outputs_match_the_reference(samplers):
    """Unit 2 of t2v from the recorded history: every stage's result (the program is the video's unit-2 one)."""
    npz, call, text, noise = load_run("t2v")
    history = [jnp.asarray(ncthw_to_cl(npz["output_latents"][:, :, u:u + 1])) for u in range(2)]
    stages = samplers["miniflux_tiny"].unit(history, noise(2), text, call["video_num_inference_steps"],
                                            call["video_guidance_scale"])
    for k, out in enumerate(stages):
        ref = ncthw_to_cl(npz[f"units/u2/stage{k}_output"])
        np.testing.assert_array_less(np.abs(np.asarray(out) - ref).max(), MAX_REL * np.abs(ref).max())


class ToyDiT(nnx.Module):
    """A cheap DiT stand-in whose velocity depends on the current clip, the history, the text row and t."""

    def __init__(self):
        self.weight = nnx.Param(jnp.float32(-0.5))

    def __call__(self, sample, encoder_hidden_states, encoder_attention_mask, pooled_projections, timestep_ratio,
                 image_tokens=None):
        *history, current = sample[0]
        per_row = pooled_projections[:, 0] + 1e-3 * timestep_ratio + sum(c.mean(axis=(1, 2, 3, 4)) for c in history)
        return [current * self.weight[...] + per_row[:, None, None, None, None]]


def toy_text(rows: int, seed: int) -> TextConditioning:
    rng = np.random.default_rng(seed)
    return TextConditioning(jnp.asarray(rng.standard_normal((rows, 3, 2), np.float32)), jnp.ones((rows, 3), jnp.int32),
                            jnp.asarray(rng.standard_normal((rows, 2), np.float32)))


def toy_noise(batch: int, units: int = 5):
    rng = np.random.default_rng(7)
    units = [UnitNoise(rng.standard_normal((batch, 1, 2, 2, 1), np.float32),
                       (rng.standard_normal((batch, 1, 4, 4, 1), np.float32),
                        rng.standard_normal((batch, 1, 8, 8, 1), np.float32))) for _ in range(units)]
    return lambda i: units[i]


def rows_of(noise, rows):
    return lambda i: jax.tree.map(lambda a: a[rows], noise(i))


@pytest.mark.parametrize("temp, programs", [(16, 4), (31, 5)])
def test_a_few_programs_per_video_reused_by_later_videos(temp, programs):
    """One first-unit program and one per history bucket, t2v and i2v together (not one per unit)."""
    sampler = PyramidSampler(ToyDiT())
    text = guidance_rows(toy_text(1, 0), toy_text(1, 1))
    before = PyramidSampler.num_programs()
    sampler.video(text, toy_noise(1, temp), temp, [2, 2, 2], [1, 1, 1], 7.0, 5.0)
    compiled = PyramidSampler.num_programs() - before
    assert 1 < compiled <= programs  # (a bucket shared with an earlier test's video is compiled already)
    sampler.video(text, toy_noise(1, temp), temp, [2, 2, 2], [1, 1, 1], 3.0, 2.0)  # other scales: same programs
    first = jnp.zeros((1, 1, 8, 8, 1))
    sampler.video(text, toy_noise(1, temp), temp, [9, 9, 9], [1, 1, 1], 3.0, 2.0, history=first)  # i2v
    assert PyramidSampler.num_programs() - before == compiled


def test_later_unit_programs_compile_on_a_background_thread_while_the_first_unit_runs(monkeypatch):
    """Only the first unit's program compiles on the caller's thread; the three history buckets of temp 16 compile
    on the sampler's background thread, from one stand-in program each, and a second video compiles nothing
    anywhere."""
    compiles, recording, stand_ins = [], [True], []
    build = PyramidSampler._unit_program

    def counted(self, *args):
        if threading.current_thread().name.startswith("unit-compile"):
            stand_ins.append(len(args[0]))  # the history frames it was built with
        return build(self, *args)

    monkeypatch.setattr(PyramidSampler, "_unit_program", counted)

    def record(event, seconds, fun_name="?", **_):
        if recording[0] and event.endswith("backend_compile_duration") and "denoise_unit" in fun_name:
            compiles.append(threading.current_thread().name.split("_")[0])

    jax.monitoring.register_event_duration_secs_listener(record)
    try:
        sampler = PyramidSampler(ToyDiT())
        text = guidance_rows(toy_text(1, 0), toy_text(1, 1))
        steps = [4, 3, 5], [3, 2, 3]  # no other test's programs
        sampler.video(text, toy_noise(1, 16), 16, *steps, 7.0, 5.0)
        assert compiles.count("MainThread") == 1 and compiles.count("unit-compile") == 3, compiles
        assert len(stand_ins) == 3, stand_ins
        compiles.clear()
        sampler.video(text, toy_noise(1, 16), 16, *steps, 3.0, 2.0)
        assert compiles == []
    finally:
        recording[0] = False


def test_prompt_batch_rows_pair_up_under_guidance():
    """Two prompts in one batch, rows [neg, neg, pos0, pos1], give each prompt's single-prompt video."""
    sampler, noise = PyramidSampler(ToyDiT()), toy_noise(2)
    positive, negative = toy_text(2, 0), toy_text(1, 1)
    both = np.asarray(sampler.video(guidance_rows(positive, negative), noise, 3, [2, 2, 2], [2, 2, 2], 7.0, 5.0))
    for b in range(2):
        alone = guidance_rows(TextConditioning(*(x[b:b + 1] for x in positive)), negative)
        one = sampler.video(alone, rows_of(noise, slice(b, b + 1)), 3, [2, 2, 2], [2, 2, 2], 7.0, 5.0)
        np.testing.assert_array_equal(both[b:b + 1], np.asarray(one))


def test_without_guidance_only_positive_rows_are_used():
    sampler, noise, positive = PyramidSampler(ToyDiT()), toy_noise(1), toy_text(1, 0)
    plain = sampler.video(positive, noise, 2, [2, 2, 2], [2, 2, 2], 0.0, 5.0)
    unit_scale = sampler.video(guidance_rows(positive, toy_text(1, 1)), noise, 2, [2, 2, 2], [2, 2, 2], 1.0, 1.0)
    np.testing.assert_allclose(np.asarray(plain), np.asarray(unit_scale), rtol=1e-5, atol=1e-5)


def test_bad_calls_fail_before_any_work():
    sampler, noise = PyramidSampler(ToyDiT()), toy_noise(1)
    with pytest.raises(ValueError, match="need 2"):
        sampler.video(toy_text(1, 0), noise, 2, [2, 2, 2], [2, 2, 2], 7.0, 5.0)
    with pytest.raises(ValueError, match="one positive step count per stage"):
        sampler.video(toy_text(1, 0), noise, 2, [2, 2], [2, 2, 2], 0.0, 5.0)
    with pytest.raises(ValueError, match="negative prompts"):
        guidance_rows(toy_text(3, 0), toy_text(2, 1))


def test_a_window_keeps_the_latest_frames_and_the_program_set_flat():
    """Past `window` frames each unit sees only the latest window - 1 frames: one program from then on."""
    sampler, noise = PyramidSampler(ToyDiT()), toy_noise(1)
    text = guidance_rows(toy_text(1, 0), toy_text(1, 1))
    whole = np.asarray(sampler.video(text, noise, 5, [2, 2, 2], [3, 1, 2], 7.0, 5.0))
    before = PyramidSampler.num_programs()
    seen = []
    windowed = np.asarray(sampler.video(text, noise, 5, [2, 2, 2], [3, 1, 2], 7.0, 5.0, window=3,
                                        on_unit=lambda video: seen.append(video.shape[1])))
    assert PyramidSampler.num_programs() == before  # histories of 0, 1, 2 frames: compiled by the first video
    assert seen == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(windowed[:, :3], whole[:, :3])  # within the window: unchanged
    assert not np.allclose(windowed[:, 3:], whole[:, 3:])
    last = sampler.unit([jnp.asarray(windowed[:, 2:3]), jnp.asarray(windowed[:, 3:4])], noise(4), text, [3, 1, 2], 5.0,
                        history_capacity=2)
    np.testing.assert_array_equal(windowed[:, 4:], np.asarray(last[-1]))


def test_given_history_continues_a_video_exactly():
    sampler, noise = PyramidSampler(ToyDiT()), toy_noise(1)
    text = guidance_rows(toy_text(1, 0), toy_text(1, 1))
    whole = np.asarray(sampler.video(text, noise, 5, [2, 2, 2], [3, 1, 2], 7.0, 5.0))
    rest = sampler.video(text, lambda i: noise(i + 2), 5, [3, 1, 2], [3, 1, 2], 7.0, 5.0,
                         history=jnp.asarray(whole[:, :2]))
    np.testing.assert_array_equal(np.asarray(rest), whole)
