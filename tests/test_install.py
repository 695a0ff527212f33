"""A non-editable install works outside the repository: presets, `from_pretrained` and sample.py's main job.

The wheel is built from a copy of the package (nothing else of the repository) and installed into a fresh venv,
which borrows this environment's dependencies through a `.pth` path line (offline and fast; this environment's
editable install of pyramid_jax is not activated there). Everything then runs from a temporary folder.
"""

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import textwrap

from conftest import FIXTURES

ROOT = FIXTURES.parents[1]
TINY = FIXTURES / "snapshots" / "miniflux_tiny"

CHECK = textwrap.dedent("""
    import sys
    import jax.numpy as jnp
    import pyramid_jax
    from pyramid_jax.presets import load_preset, preset_names

    assert pyramid_jax.__file__.startswith(sys.prefix), pyramid_jax.__file__  # the installed copy
    assert load_preset("miniflux_768p").width == 1280 and len(preset_names()) == 5
    pipe = pyramid_jax.PyramidFlowPipeline.from_pretrained(sys.argv[1], dtype=jnp.float32)
    assert pipe.family == "pyramid_flux" and pipe.preset.max_temp == 3  # the snapshot's own sampling.json
    assert pipe.encode_prompt(["a fox"]).embeds.shape[:2] == (2, 128)  # loads the text encoders
""")


def run(*args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args[:3]))} ... failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_wheel_install_runs_outside_the_repository(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT / "pyramid_jax", source / "pyramid_jax", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
        "-w", str(tmp_path / "wheels"), str(source))
    (wheel,) = (tmp_path / "wheels").iterdir()

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    venv_python = venv / "bin" / "python"
    venv_site = run(str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    run(sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", venv_site, str(wheel))
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if os.path.isdir(p)]
    with open(os.path.join(venv_site, "borrowed_dependencies.pth"), "w") as f:
        f.write("\n".join(dict.fromkeys(deps)) + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "PYTHONPATH": ""}
    run(str(venv_python), "-c", CHECK, str(TINY), cwd=work, env=env)

    shutil.copy(ROOT / "sample.py", work / "sample.py")  # the script alone: the package comes from the install
    out = run(str(venv_python), "sample.py", "--snapshot", str(TINY), "--temp", "2", "--steps", "1,1,1",
              "--video-steps", "1,1,1", "--output", "clip.mp4", "--no-compile-cache", cwd=work, env=env)
    assert "-> clip.mp4" in out.stdout and (work / "clip.mp4").stat().st_size > 0
