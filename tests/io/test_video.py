"""Writing frames: an image file of a video is its frame strip; a single frame is itself."""

import numpy as np
import pytest
from PIL import Image

from pyramid_jax.io.video import save_frames


def test_png_of_a_video_is_its_frame_strip_and_of_one_frame_the_frame(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (3, 8, 6, 3), dtype=np.uint8)
    strip = np.asarray(Image.open(save_frames(frames, str(tmp_path / "strip.png"))))
    np.testing.assert_array_equal(strip, np.concatenate(list(frames), axis=1))
    single = np.asarray(Image.open(save_frames(frames[:1], str(tmp_path / "one.png"))))
    np.testing.assert_array_equal(single, frames[0])
    with pytest.raises(ValueError, match="unknown output suffix"):
        save_frames(frames, str(tmp_path / "x.avi"))
