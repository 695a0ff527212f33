"""bench/fit.py at tiny size on CPU: its memory figures are real, and the dense backend's grow with N^2."""

import importlib.util
import pathlib

import pytest

from pyramid_jax.layers.attention import available_backends

BENCH = pathlib.Path(__file__).parents[2] / "bench"


@pytest.fixture(scope="module")
def fit():
    import sys

    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_fit", BENCH / "fit.py")
    module = sys.modules["bench_fit"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_config(fit, backend):
    return fit.bench_config("miniflux_384p", attention_backend=backend, **fit.tiny_overrides("miniflux"))


def test_dit_and_video_rows_have_positive_memory(fit):
    cache = {}
    dit = fit.measure("miniflux", "384p", "dit", "cpu", "xla", tiny=True, cache=cache)
    assert dit.devices == 1 and dit.tokens == (2 * 4 + 4 * 8 + 2 * 8 * 16) // 4 + 128  # unit 3's 4 clips + text
    assert dit.args > 0 and dit.temp > 0 and dit.peak >= dit.args and dit.gflop > 0
    video = fit.measure("miniflux", "384p", "video", "cpu", "xla", tiny=True, cache=cache)
    assert video.decode > 0 and video.peak >= dit.peak


@pytest.mark.parametrize("backend", available_backends("cpu")[1:])
def test_attention_temp_scales_with_tokens(fit, backend):
    """One frame of 64x80 then 128x80 latents (1,408 then 2,688 tokens with text): the dense `xla` backend's
    float32 `[B, H, N, N]` scores dominate, so temp grows ~N^2 (3.6x); any other backend grows ~N (1.9x)."""
    config = _tiny_config(fit, backend)
    mesh = fit.make_mesh(devices=fit.target_devices("cpu"))
    temps = [fit.dit_call(config, fit.VideoShape(h, 80, 1), mesh)[0]["temp"] for h in (64, 128)]
    ratio = temps[1] / temps[0]
    assert temps[0] > 2 * 2 * 1408 ** 2 * 4 if backend == "xla" else temps[0] > 0
    assert 3.0 < ratio < 4.5 if backend == "xla" else ratio < 2.5


def test_mesh_row_and_tpu_rows_skip_without_libtpu(fit, capsys):
    fit.main(["--tiny", "--models", "miniflux", "--res", "384p", "--programs", "dit-mesh", "--targets", "cpu,v5e-1",
              "--backends", "xla"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| miniflux")]
    cpu, tpu = lines
    cells = [c.strip() for c in cpu.split("|")[1:-1]]
    assert cells[3:6] == ["cpu", "8", "xla"] and float(cells[8]) > 0 and "sequence=4" in cells[12]
    assert ("skipped: libtpu not installed" in tpu) != fit.tpu_available()
