"""The persistent compilation cache as the CLIs set it up: each program's compile is logged, and a second process
loads it from the cache (and says so)."""

import os
import subprocess
import sys

SCRIPT = """
import argparse, jax, jax.numpy as jnp
from pyramid_jax.compile_cache import add_compile_cache_flags, setup_compile_cache
parser = argparse.ArgumentParser()
add_compile_cache_flags(parser)
setup_compile_cache(parser.parse_args(sys.argv[1:]), min_seconds=0.0)
jax.jit(lambda x: jnp.sin(x) * 3 + 1)(jnp.arange(5.0)).block_until_ready()
"""


def run(*flags):
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}  # not the suite's shared cache
    out = subprocess.run([sys.executable, "-c", "import sys" + SCRIPT, *flags], capture_output=True, text=True,
                         check=True, env=env)
    return [line for line in out.stdout.splitlines() if "<lambda>" in line]


def test_compiles_are_logged_and_a_rerun_loads_them(tmp_path):
    first = run("--compile-cache", str(tmp_path))
    assert len(first) == 1 and first[0].startswith("program jit(<lambda>): compiled in ")
    assert run("--compile-cache", str(tmp_path))[0].startswith(
        "program jit(<lambda>): loaded from the compilation cache in ")
    assert run("--compile-cache", str(tmp_path), "--no-compile-cache")[0].startswith("program jit(<lambda>): compiled")
