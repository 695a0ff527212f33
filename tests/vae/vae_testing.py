"""Shared helpers of the VAE tests: the tiny reference VAE (fixtures/vae) and its recorded cases in our layout."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

from conftest import FIXTURES, ncthw_to_cl
from pyramid_jax.vae.load import load_vae

VAE_DIR = FIXTURES / "vae"


@pytest.fixture(scope="module", autouse=True)
def unoptimized_compiles():
    """XLA compile time dominates these small-input tests on CPU: compile without most optimizations (same math).

    Autouse in every module that imports it; the previous setting comes back after the module.
    """
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


@functools.cache
def tiny_vae():
    return load_vae(str(VAE_DIR / "model"))


@functools.cache
def _cases() -> dict[str, np.ndarray]:
    with np.load(VAE_DIR / "cases.npz") as data:
        return dict(data)


def case(key: str) -> np.ndarray:
    """A recorded array in our `[B, T, H, W, C]` layout."""
    return ncthw_to_cl(_cases()[key])


def assert_close(got, want, rtol: float = 1e-5) -> tuple[float, float]:
    """Elementwise |got - want| <= rtol * (|want| + max|want|); returns (max abs error, max abs error / max|want|)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)
    err = float(np.abs(got - want).max())
    return err, err / scale
