"""Token assembly: packing order, position tables and masks (dit_spec.md §2.6, §2.7, §3.3)."""

import jax.numpy as jnp
import numpy as np
import pytest

from pyramid_jax.dit.tokens import (ClipGrid, ImageTokens, StageLayout, pack_2x2, resampled_grid, stage_rows,
                                   text_image_mask)


def test_resampled_grid_matches_torch_linear_interpolation():
    import torch

    for size, samples in [(12, 6), (12, 3), (7, 3), (5, 5)]:
        ref = torch.nn.functional.interpolate(torch.arange(size, dtype=torch.float32)[None, None], size=samples,
                                              mode="linear", align_corners=False)[0, 0].numpy()
        np.testing.assert_array_equal(resampled_grid(size, samples), ref)
    np.testing.assert_array_equal(resampled_grid(8, 4), 2 * np.arange(4) + 0.5)
    np.testing.assert_array_equal(resampled_grid(8, 2), 4 * np.arange(2) + 1.5)


def test_pack_order_is_p_q_c():
    x = np.arange(1 * 1 * 4 * 4 * 3).reshape(1, 1, 4, 4, 3)
    tokens = np.asarray(pack_2x2(jnp.asarray(x)))
    # token (y=1, x=0) = index 2 in a 2x2 grid; feature (p*2+q)*C + c for pixel (2y+p, 2x+q, c)
    for p in range(2):
        for q in range(2):
            for c in range(3):
                assert tokens[0, 2, (p * 2 + q) * 3 + c] == x[0, 0, 2 + p, q, c]


def test_frame_ids_and_fractional_positions():
    layout = StageLayout((ClipGrid(2, 2, 3), ClipGrid(1, 4, 6), ClipGrid(1, 4, 6)))
    assert layout.num_tokens == 12 + 24 + 24
    np.testing.assert_array_equal(layout.frame_ids(), np.repeat([0, 1, 2, 3], [6, 6, 24, 24]))
    pos = layout.spatial_positions()
    np.testing.assert_array_equal(pos[:6, 0], np.repeat([0.5, 2.5], 3))
    np.testing.assert_array_equal(pos[:3, 1], [0.5, 2.5, 4.5])
    np.testing.assert_array_equal(pos[12:18], np.stack([np.zeros(6), np.arange(6)], -1))


def test_mask_rule_pad_and_temporal_causality():
    layout = StageLayout((ClipGrid(1, 1, 1), ClipGrid(1, 1, 1)))
    image = ImageTokens.unpadded(layout)
    token_mask = text_image_mask(jnp.asarray([[1, 0]]), image, layout, temporal_causal=True)
    mask = np.asarray(token_mask.dense())[0, 0]
    # order: valid text, pad text, frame-0 image, frame-1 image
    expected = np.array([[1, 0, 1, 0],
                         [0, 1, 0, 0],
                         [1, 0, 1, 0],
                         [1, 0, 1, 1]], bool)
    np.testing.assert_array_equal(mask, expected)
    assert token_mask.key_limits == ((2, 3), (3, 3))  # text: not the current clip; frame 0: no later frame


@pytest.mark.parametrize("pad_frames", [0, 1, 2])
def test_key_limits_hold_for_padded_histories(pad_frames):
    """A padded history with a real frame promises key limits, and the mask agrees: the text sees no current clip
    and no history clip sees a later clip. Without a real frame (or without the promise) there are none."""
    layout = StageLayout((ClipGrid(1, 1, 2), ClipGrid(2, 1, 1), ClipGrid(1, 2, 2)))
    text_valid = jnp.asarray([[1, 1, 0]])
    for real_history in (False, True):
        image = ImageTokens.leading_pad(layout, jnp.int32(pad_frames), real_history)
        token_mask = text_image_mask(text_valid, image, layout, temporal_causal=True)
        assert token_mask.key_limits == (((3, 7), (5, 5), (7, 7)) if real_history else ())
        dense = np.asarray(token_mask.dense())[0, 0]
        start = 0
        for q_stop, k_stop in token_mask.key_limits:
            assert not dense[start:q_stop, k_stop:].any()
            start = q_stop
    assert text_image_mask(text_valid, ImageTokens.unpadded(layout), layout, False).key_limits == ()


def test_stage_rows_interleaving():
    x = jnp.arange(6)  # rows b*S + s for B=3, S=2
    s0, s1 = stage_rows(x, 2)
    np.testing.assert_array_equal(s0, [0, 2, 4])
    np.testing.assert_array_equal(s1, [1, 3, 5])
