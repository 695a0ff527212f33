"""Argument checks: wrong types, NaN/inf, zero steps and out-of-range seeds fail naming the argument."""

import jax
import numpy as np
import pytest

from pyramid_jax import validation
from pyramid_jax.errors import ArgumentError


@pytest.mark.parametrize("value", [64.0, True, "64", None])
def test_integers_are_integers(value):
    with pytest.raises(ArgumentError, match="height must be an integer"):
        validation.integer(value, "height")
    assert validation.integer(np.int64(64), "height") == 64


@pytest.mark.parametrize("value,message", [("4", "must be a number"), (True, "must be a number"),
                                           (float("nan"), "must be a finite"), (float("inf"), "must be a finite")])
def test_reals_are_finite_numbers(value, message):
    with pytest.raises(ArgumentError, match=f"guidance_scale {message}"):
        validation.real(value, "guidance_scale")
    assert validation.real(np.float32(4), "guidance_scale") == 4.0


@pytest.mark.parametrize("steps", [0, (2, 0, 2), (2, 2), 2.0, "2,2,2"])
def test_zero_or_malformed_steps_are_errors_not_defaults(steps):
    with pytest.raises(ArgumentError, match="steps"):
        validation.step_counts(steps, "steps", 3)
    assert validation.step_counts(5, "steps", 3) == (5, 5, 5)


def test_every_seed_in_range_has_its_own_stream_and_others_are_refused():
    draw = lambda seed: np.asarray(jax.random.normal(validation.seed_key(seed), (4,)))  # noqa: E731
    np.testing.assert_array_equal(draw(7), np.asarray(jax.random.normal(jax.random.key(7), (4,))))
    assert not np.array_equal(draw(0), draw(2 ** 32))
    assert not np.array_equal(draw(2 ** 63 - 1), draw(2 ** 31 - 1))
    for seed in (-1, 2 ** 63, 2 ** 64, 1.5):
        with pytest.raises(ArgumentError, match="seed"):
            validation.seed_key(seed)
