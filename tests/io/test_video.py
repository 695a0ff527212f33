"""Writing frames: an image file of a video is its frame strip (gaps, small frames scaled up); a single frame is
itself."""

import numpy as np
import pytest
from PIL import Image

from pyramid_jax.io.video import STRIP_GAP, save_frames


def test_png_of_a_video_is_its_frame_strip_and_of_one_frame_the_frame(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (3, 8, 6, 3), dtype=np.uint8)
    strip = np.asarray(Image.open(save_frames(frames, str(tmp_path / "strip.png"))))
    scale = 16  # 8 pixels high -> 128
    assert strip.shape == (8 * scale, 3 * 6 * scale + 2 * STRIP_GAP, 3)
    for i, frame in enumerate(frames):
        left = i * (6 * scale + STRIP_GAP)
        np.testing.assert_array_equal(strip[:, left:left + 6 * scale], frame.repeat(scale, 0).repeat(scale, 1))
    assert (strip[:, 6 * scale:6 * scale + STRIP_GAP] == 255).all()
    large = np.zeros((2, 128, 16, 3), np.uint8)
    assert np.asarray(Image.open(save_frames(large, str(tmp_path / "large.png")))).shape == (128, 32 + STRIP_GAP, 3)
    single = np.asarray(Image.open(save_frames(frames[:1], str(tmp_path / "one.png"))))
    np.testing.assert_array_equal(single, frames[0])
    with pytest.raises(ValueError, match="unknown output suffix"):
        save_frames(frames, str(tmp_path / "x.avi"))
