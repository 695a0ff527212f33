"""Test setup: 8 fake CPU devices for sharding tests, fp32 matmuls at highest precision for parity.

One persistent compilation cache per test run (a fresh temporary folder, removed at exit, unless
$JAX_COMPILATION_CACHE_DIR is set), shared by the CLI subprocesses the tests start: each later run of the same
program loads it instead of compiling again. Sound: the cache key is the whole program plus its compile options and
devices, so only an identical program is reused. The pytest process itself writes no cache: with jax 0.10.2 the
executable serialisation segfaulted once in a full CPU run (in `put_executable_and_time`, after hundreds of writes),
not reproducible alone, and a crash there would lose the whole run.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="pyramid_jax_test_xla_")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)

import pathlib  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
jax.config.update("jax_enable_compilation_cache", False)  # in this process only (see above)

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def ncthw_to_cl(x: np.ndarray) -> np.ndarray:
    """Torch latent/video layout [B, C, T, H, W] -> ours [B, T, H, W, C]."""
    return np.transpose(x, (0, 2, 3, 4, 1))


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drops the compiled programs after each test module: the model programs are module-level jits
    (`parallel/compiled.py`) whose caches would otherwise keep every test model's executables to the end of the run."""
    yield
    jax.clear_caches()


@pytest.fixture(scope="session")
def fixtures_dir() -> pathlib.Path:
    return FIXTURES
