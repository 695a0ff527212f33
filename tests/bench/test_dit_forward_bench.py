"""bench/dit_forward.py runs end to end at toy size and prints a line per attention backend; bad names are refused."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args):
    return subprocess.run([sys.executable, "bench/dit_forward.py", "--height", "8", "--width", "8", "--unit", "2",
                           "--repeats", "1", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_backends_side_by_side():
    out = _run("--attention-backends", "xla,chunked")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines[-2:]] == ["xla", "chunked"]
    assert all("forward" in line and "tokens/s" in line for line in lines[-2:])


def test_unknown_backend_is_named():
    out = _run("--attention-backends", "magic")
    assert out.returncode != 0 and "attention backend 'magic' is unknown" in out.stderr
