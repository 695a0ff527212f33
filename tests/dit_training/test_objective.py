"""Pyramidal flow-matching objective parity with the reference (tests/fixtures/training), recorded draws replayed."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import pyramid_jax
from pyramid_jax.dit_training.objective import KeyRandomness, PyramidObjective, flow_matching_loss, foreground_weights
from pyramid_jax.dit_training.text_dropout import drop_text
from pyramid_jax.dit_training.units import stage_units
from pyramid_jax.sampling import TextConditioning
from pyramid_jax.sampling.pyramid import latent_pyramid

from conftest import FIXTURES, ncthw_to_cl

DATA = np.load(FIXTURES / "training" / "training.npz")
META = json.loads((FIXTURES / "training" / "training.json").read_text())
SNAPSHOT_DIT = FIXTURES / "snapshots" / "miniflux_tiny" / "diffusion_transformer_384p"
OBJECTIVE = PyramidObjective()
# Inputs: the reference mixes with a float64 sigma, we use float32 (values ~1-4). Loss: fp32 DiT at highest precision.
INPUT_TOL = dict(rtol=1e-6, atol=1e-6)
LOSS_RTOL = 2e-6


def cl(x):
    """Torch layout arrays -> ours: latents [B, C, T, H, W] -> [B, T, H, W, C]; vectors unchanged."""
    return jnp.asarray(ncthw_to_cl(x) if x.ndim == 5 else x)


class RecordedRandomness:
    """Replays a case's recorded `rng/NNN_<name>` draws by role (history noise is drawn newest first there)."""

    def __init__(self, case: str):
        self.entries = META["cases"][case]["rng"]

    def _draws(self, name, column="any"):
        return [cl(DATA[e["key"]]) for e in self.entries
                if e["name"] == name and (column == "any" or e["column"] == column)]

    def noise(self, shape):
        (noise,) = self._draws("noise")
        assert noise.shape == shape
        return noise

    def timestep_u(self, column, batch):
        (u,) = self._draws("timestep_u", column)
        return u

    def corrupt_sigma_u(self, column, batch):
        (u,) = self._draws("corrupt_sigma_u", column)
        return u

    def corrupt_noise(self, column, clip, shape):
        noise = self._draws("corrupt_noise", column)[::-1][clip]
        assert noise.shape == shape
        return noise

    def text_dropout_u(self, batch):
        (u,) = self._draws("text_dropout_u")
        return u


def case_units(case):
    return META["cases"][case].get("num_units_per_stage") if case != "nonar" else None


def _text(prefix):
    return TextConditioning(*(jnp.asarray(DATA[f"{prefix}/{k}"]) for k in
                              ("prompt_embeds", "prompt_attention_mask", "pooled_prompt_embeds")))


def _captions_before_dropout():
    """`call/text` has caption 1 encoded as "" (dropped): (null text, captions with row 1 as another caption)."""
    text = _text("call/text")
    return TextConditioning(*(x[1:2] for x in text)), TextConditioning(*(x.at[1].set(x[0]) for x in text))


@functools.cache
def run_case(case):
    """(FlowInputs, loss) of a recorded case, from one jitted call of the objective through the tiny DiT."""
    graphdef, state = nnx.split(pyramid_jax.load_dit(str(SNAPSHOT_DIT)))
    rand, units = RecordedRandomness(case), case_units(case)
    if case == "call":
        latents = cl(DATA["call/vae_normalized_latents"])
        null, text = _captions_before_dropout()
    else:
        latents, text, null = cl(DATA[f"{case}/latents_full"]), _text("text"), None

    def run(state, latents, text, null):
        dit = nnx.merge(graphdef, state)
        return OBJECTIVE.inputs(latents, rand, units), OBJECTIVE.loss(dit, latents, text, rand, units, null)

    # XLA -O0 compiles a third faster on CPU; the parity margins are the same.
    args = (state, latents, text, null)
    return jax.jit(run).lower(*args).compile({"xla_backend_optimization_level": 0})(*args)


@pytest.mark.parametrize("case", ["nonar", "ar"])
def test_spatial_pyramid_is_bit_exact(case):
    levels = latent_pyramid(cl(DATA[f"{case}/latents_full"]), 3)
    for k, level in enumerate(levels):
        np.testing.assert_array_equal(np.asarray(level), ncthw_to_cl(DATA[f"{case}/pyramid/{k}"]))


def test_stage_units_cover_every_position():
    # reference allocation: rank 3 of a sync group of 8, 16 units: positions 4 and 12 for stage 2
    assert stage_units(1, 16, sync_group=8, rank=3) == (5, 5, 12)
    assert stage_units(2, 16, sync_group=8, rank=3) == (13, 13, 4)
    assert stage_units(2, 16, sync_group=8, rank=3, available=6) == (6, 6, 4)
    assert sorted(stage_units(c, 16)[-1] for c in range(16)) == list(range(1, 17))


@pytest.mark.parametrize("case", ["nonar", "ar", "call"])
def test_noisy_inputs_targets_timesteps_match(case):
    inputs, _ = run_case(case)
    sample_key = "call/dit/sample/s{c}/" if case == "call" else f"{case}/noisy_latents/col{{c}}/"
    for c, clips in enumerate(inputs.sample):
        want = sorted((k for k in DATA.files if k.startswith(sample_key.format(c=c))),
                      key=lambda k: int(k.rsplit("/c", 1)[1]))
        assert [tuple(x.shape) for x in clips] == [tuple(ncthw_to_cl(DATA[k]).shape) for k in want]
        for got, key in zip(clips, want):
            np.testing.assert_allclose(np.asarray(got), ncthw_to_cl(DATA[key]), **INPUT_TOL)
        if case != "call":  # call/ records only the DiT inputs
            np.testing.assert_allclose(np.asarray(inputs.targets[c]), ncthw_to_cl(DATA[f"{case}/targets/col{c}"]),
                                       **INPUT_TOL)
            np.testing.assert_array_equal(np.asarray(inputs.sigmas[c]), DATA[f"{case}/ratios/col{c}"].reshape(-1))
            np.testing.assert_array_equal(np.asarray(inputs.timesteps[c::4]), DATA[f"{case}/timesteps/col{c}"])
    timesteps = DATA["call/dit/timestep_ratio" if case == "call" else f"{case}/loss/timestep_ratio"]
    np.testing.assert_array_equal(np.asarray(inputs.timesteps), timesteps)


@pytest.mark.parametrize("case", ["nonar", "ar", "call"])
def test_loss_through_the_tiny_dit(case):
    _, loss = run_case(case)
    want = DATA["call/loss" if case == "call" else f"{case}/loss/loss"]
    np.testing.assert_allclose(float(loss), float(want), rtol=LOSS_RTOL)


def test_text_dropout_replaces_captions_with_the_empty_prompt():
    """The `call/` case's forced uniforms [0.5, 0.05, 0.9, 0.3] drop caption 1."""
    null, captions = _captions_before_dropout()
    dropped = drop_text(captions, null, RecordedRandomness("call").text_dropout_u(4), OBJECTIVE.text_dropout)
    for got, want in zip(dropped, _text("call/text")):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_key_randomness_is_deterministic_and_jittable():
    key = functools.partial(jax.random.key, impl="rbg")  # compiles faster than threefry on CPU
    latents = jnp.asarray(np.random.default_rng(0).standard_normal((4, 3, 8, 8, 4), np.float32))

    @jax.jit
    def inputs(key):
        return OBJECTIVE.inputs(latents, KeyRandomness(key), (3, 3, 2))

    a, b = inputs(key(0)), inputs(key(0))
    assert [[x.shape for x in clips] for clips in a.sample] == [
        [(1, 1, 2, 2, 4)] * 3, [(1, 1, 2, 2, 4), (1, 1, 4, 4, 4), (1, 1, 4, 4, 4)],
        [(1, 1, 2, 2, 4), (1, 1, 4, 4, 4), (1, 1, 4, 4, 4)], [(1, 1, 8, 8, 4)] * 2]
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    c = inputs(key(1))
    assert not np.allclose(np.asarray(a.targets[3]), np.asarray(c.targets[3]))


def test_foreground_weights_grow_with_the_distance_from_the_background():
    background, colour = np.zeros(4, np.float32), np.full(4, 3.0, np.float32)
    frame = np.tile(background, (1, 1, 6, 6, 1))
    frame[0, 0, 1:3, 1:3] = colour  # RMS distance 3: the whole extra weight
    frame[0, 0, 4, 4] = colour / 6  # distance 0.5 of foreground_distance 1: half of it
    weights = np.asarray(foreground_weights(jnp.asarray(frame + 0.25), weight=4.0, distance=1.0))[0, 0, ..., 0]
    want = np.ones((6, 6), np.float32)
    want[1:3, 1:3], want[4, 4] = 5.0, 3.0
    np.testing.assert_allclose(weights, want, rtol=1e-6)


def test_weighted_flow_matching_loss():
    rng = np.random.default_rng(0)
    preds, targets = ([rng.standard_normal((2, 1, 4, 4, 3)).astype(np.float32) for _ in range(2)] for _ in range(2))
    weights = [rng.uniform(1, 5, (2, 1, 4, 4, 1)).astype(np.float32) for _ in range(2)]
    per_sample = [np.sum(w * (p - t) ** 2, axis=(1, 2, 3, 4)) / (3 * np.sum(w, axis=(1, 2, 3, 4)))
                  for p, t, w in zip(preds, targets, weights)]
    np.testing.assert_allclose(float(flow_matching_loss(preds, targets, weights)), np.mean(per_sample), rtol=1e-6)
    ones = [np.ones_like(w) for w in weights]
    np.testing.assert_allclose(float(flow_matching_loss(preds, targets, ones)),
                               float(flow_matching_loss(preds, targets)), rtol=1e-6)


def test_foreground_weight_reaches_the_loss():
    """The default objective has no weights (the reference's MSE); a weighted one weighs each column's trained clip by
    its clean latents' distance from the background, in `loss` too."""
    latents = jnp.asarray(np.random.default_rng(1).standard_normal((4, 3, 8, 8, 4), np.float32))
    rand = KeyRandomness(jax.random.key(0, impl="rbg"))
    weighted = PyramidObjective(foreground_weight=4.0)
    assert OBJECTIVE.inputs(latents, rand, (3, 3, 2)).loss_weights is None
    inputs = weighted.inputs(latents, rand, (3, 3, 2))
    assert [w.shape for w in inputs.loss_weights] == [t.shape[:-1] + (1,) for t in inputs.targets]
    last = inputs.loss_weights[-1]  # the full-resolution column: samples 3, its second unit (frame 1)
    np.testing.assert_allclose(np.asarray(last), np.asarray(foreground_weights(latents[3:, 1:2], 4.0, 1.0)))

    def zero_velocity(sample, *_, **__):
        return [jnp.zeros_like(clips[-1]) for clips in sample]

    zeros = [jnp.zeros_like(t) for t in inputs.targets]
    loss = weighted.loss(zero_velocity, latents, _text("text"), rand, (3, 3, 2))
    np.testing.assert_allclose(float(loss), float(flow_matching_loss(zeros, inputs.targets, inputs.loss_weights)),
                               rtol=1e-6)


@pytest.mark.parametrize("field, value", [("foreground_weight", -1.0), ("foreground_distance", 0.0)])
def test_bad_foreground_settings_are_named(field, value):
    with pytest.raises(ValueError, match=f"step.objective.{field}"):
        PyramidObjective(**{field: value})
