"""Test setup: 8 fake CPU devices for sharding tests, fp32 matmuls at highest precision for parity."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import pathlib  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def ncthw_to_cl(x: np.ndarray) -> np.ndarray:
    """Torch latent/video layout [B, C, T, H, W] -> ours [B, T, H, W, C]."""
    return np.transpose(x, (0, 2, 3, 4, 1))


@pytest.fixture(scope="session")
def fixtures_dir() -> pathlib.Path:
    return FIXTURES
