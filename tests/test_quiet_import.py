"""The package, and transformers (imported when tokenizers load), print nothing on import, torch or no torch."""

import subprocess
import sys


def test_no_torch_warning_without_torch():
    code = "import sys; sys.modules['torch'] = None; import pyramid_jax; import transformers  # as the tokenizers load"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "PyTorch was not found" not in out.stderr + out.stdout
