"""The stage schedule against the reference scheduler's tables (tests/fixtures/scheduler), exactly."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from pyramid_jax.sampling.scheduler import PyramidFlowScheduler, euler_step

from conftest import FIXTURES

REF = json.loads((FIXTURES / "scheduler" / "scheduler.json").read_text())["default"]
TABLES = np.load(FIXTURES / "scheduler" / "tables.npz")
SCHED = PyramidFlowScheduler(**REF["config"] | {"stage_range": tuple(REF["config"]["stage_range"])})


def test_global_grid_is_bit_exact():
    for name in ("global_sigmas", "global_timesteps"):
        ours, ref = getattr(SCHED, name), TABLES[f"default/{name}"]
        assert ours.dtype == ref.dtype == np.float32
        np.testing.assert_array_equal(ours, ref)
    assert SCHED.sigma_min == REF["sigma_min"] and SCHED.sigma_max == REF["sigma_max"]


def test_stage_endpoints_are_exact():
    for name in ("start_sigmas", "end_sigmas", "ori_start_sigmas"):
        assert list(getattr(SCHED, name)) == REF[name], name
    assert [list(r) for r in SCHED.timestep_ratios] == REF["timestep_ratios"]


@pytest.mark.parametrize("stage", range(3))
def test_per_stage_tables_are_bit_exact(stage):
    timesteps, sigmas = SCHED.timesteps_per_stage[stage], SCHED.sigmas_per_stage[stage]
    assert timesteps.dtype == np.float32 and sigmas.dtype == np.float64
    np.testing.assert_array_equal(timesteps, TABLES[f"default/timesteps_per_stage/{stage}"])
    np.testing.assert_array_equal(sigmas, TABLES[f"default/sigmas_per_stage/{stage}"])
    assert [float(timesteps[0]), float(timesteps[-1])] == REF["timesteps_per_stage_first_last"][stage]


@pytest.mark.parametrize("name", sorted(REF["set_timesteps"]))
def test_set_timesteps_is_exact(name):
    ref = REF["set_timesteps"][name]
    n, k = ref["num_inference_steps"], ref["stage_index"]
    assert SCHED.timesteps(n, k).tolist() == ref["timesteps"]
    assert SCHED.sigmas(n, k).tolist() == ref["sigmas"]


def test_renoise_coefficients_match_the_spec():
    # pipeline_spec.md §4b; and the jump lands on the corrected start sigma: sqrt(1 + 1/gamma) alpha (1 - o).
    for stage, (alpha, beta) in ((1, (0.59988, 0.69303)), (2, (0.74963, 0.43366))):
        a, b = SCHED.renoise_coefficients(stage)
        assert (round(a, 5), round(b, 5)) == (alpha, beta)
        o = 1 - SCHED.ori_start_sigmas[stage]
        assert abs(2 * a * (1 - o) - SCHED.start_sigmas[stage]) < 1e-15
    with pytest.raises(ValueError, match="jumps into stages"):
        SCHED.renoise_coefficients(0)


@pytest.mark.parametrize("dtype,tag", [(jnp.float32, "fp32"), (jnp.bfloat16, "bf16")])
def test_euler_steps_are_bit_exact(dtype, tag):
    """set_timesteps(3, 1), then three steps; bf16 carries x and v in bf16 like the bf16 sampler."""
    x = jnp.asarray(TABLES["default/euler_example/x0"]).astype(dtype)
    v = jnp.asarray(TABLES["default/euler_example/v"]).astype(dtype)
    for i, delta in enumerate(SCHED.sigma_deltas(3, 1)):
        x = euler_step(x, v, jnp.float32(delta))
        assert x.dtype == dtype
        ref = TABLES[f"default/euler_example/{tag}_after_step{i}" + ("_as_fp32" if tag == "bf16" else "")]
        np.testing.assert_array_equal(np.asarray(x.astype(jnp.float32)), ref)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="stage must be"):
        SCHED.timesteps(10, 3)
    with pytest.raises(ValueError, match="positive integer"):
        SCHED.sigmas(0, 0)
    with pytest.raises(ValueError, match="stage_range"):
        PyramidFlowScheduler(stages=2)
