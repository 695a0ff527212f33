"""sample.py --extend: an interrupted run keeps its finished frames on disk, and --extend continues it exactly."""

import numpy as np
import pytest

import sample
from pyramid_jax.sampling.sampler import PyramidSampler

TINY = ["--snapshot", sample.TINY_SNAPSHOT, "--width", "64", "--height", "64", "--steps", "1", "--video-steps", "1",
        "--prompt", "a fox", "--seed", "5", "--no-compile-cache"]


def test_an_interrupted_run_continues_with_extend_to_the_uninterrupted_video(tmp_path, monkeypatch, capsys):
    assert sample.main(TINY + ["--temp", "3", "--output", str(tmp_path / "whole.png"),
                               "--save-latents", str(tmp_path / "whole.npy")]) == 0
    whole = np.load(tmp_path / "whole.npy")
    assert whole.shape == (1, 3, 8, 8, 4)

    run, calls = PyramidSampler._run, []

    def interrupted_after_two_units(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third unit
        return run(self, *args, **kwargs)

    monkeypatch.setattr(PyramidSampler, "_run", interrupted_after_two_units)
    with pytest.raises(SystemExit) as exit_:
        sample.main(TINY + ["--temp", "3", "--output", str(tmp_path / "cut.png")])
    assert exit_.value.code == 130
    partial = tmp_path / "cut.partial.npy"
    assert f"the 2 latent frames finished so far are in {partial}" in capsys.readouterr().err
    assert not (tmp_path / "cut.png").exists()
    np.testing.assert_array_equal(np.load(partial), whole[:, :2])
    monkeypatch.setattr(PyramidSampler, "_run", run)

    assert sample.main(TINY + ["--extend", str(partial), "--temp", "1", "--output", str(tmp_path / "cut.png"),
                               "--save-latents", str(tmp_path / "cut.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "cut.npy"), whole)  # as if never interrupted
    assert (tmp_path / "cut.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.npy", "cut.partial.npy", "cut.png", "whole.npy",
                                                          "whole.png"]  # no temporary left behind


@pytest.mark.parametrize("argv,message", [
    (["--extend", "no_such_clip.mp4"], "--extend clip no_such_clip.mp4 does not exist"),
    (["--extend", sample.__file__, "--image", sample.__file__], "--image .* or --extend .*, not both"),
    (["--window", "0"], r"window \(latent frames the DiT sees per unit\) must be an integer in >= 1"),
])
def test_bad_extend_arguments_exit_before_any_model_loads(argv, message):
    with pytest.raises(SystemExit, match=message):
        sample.main(argv + ["--no-compile-cache"])
