"""The moving-shapes dataset: clips stay in frame, captions and held-out wordings, the jsonl `train.py` reads, and
the colour/direction reader the demo test relies on."""

import dataclasses
import json

import numpy as np
import pytest

from pyramid_jax.demo.captions import HELD_OUT_TEMPLATES, PROMPT_SUFFIX, TRAIN_TEMPLATES, vocabulary
from pyramid_jax.demo.dataset import write_shapes_dataset
from pyramid_jax.demo import judge
from pyramid_jax.demo.judge import read_video
from pyramid_jax.demo.shapes import (BACKGROUND, COLOURS, DIRECTIONS, MOTIONS, PALETTE, SHAPES, TAUGHT_DIRECTIONS,
                                     random_clip, render)
from pyramid_jax.training.data.annotations import read_annotations
from pyramid_jax.training.data.frames import read_frames


def test_every_clip_stays_in_frame_and_reads_back_as_generated():
    rng = np.random.default_rng(0)
    for _ in range(60):
        clip = random_clip(rng, 17, 64)
        video = render(clip, 17, 64)
        assert video.shape == (17, 64, 64, 3) and video.dtype == np.uint8
        border = np.concatenate([video[:, 0], video[:, -1], video[:, :, 0], video[:, :, -1]], axis=1)
        assert (border == BACKGROUND).all(), clip  # the shape never touches the frame's edge
        reading = read_video(video)
        assert (reading.colour, reading.first_colour, reading.direction, reading.shape, reading.pieces) == \
            (clip.colour, clip.colour, clip.direction, clip.shape, 1), (clip, reading)
        assert abs(max(np.abs(reading.shift)) - 16 * clip.speed) < 1.0


def test_diagonal_clips_stay_in_frame_and_read_as_diagonal_only_when_the_judge_knows_the_word():
    rng = np.random.default_rng(4)
    (word, (dx, dy)), = TAUGHT_DIRECTIONS.items()
    for _ in range(30):
        clip = random_clip(rng, 9, 64, direction=word)
        video = render(clip, 9, 64)
        border = np.concatenate([video[:, 0], video[:, -1], video[:, :, 0], video[:, :, -1]], axis=1)
        assert (border == BACKGROUND).all(), clip
        reading = read_video(video, PALETTE, MOTIONS)
        assert (reading.colour, reading.direction, reading.shape) == (clip.colour, word, clip.shape), (clip, reading)
        assert np.allclose(reading.shift, (8 * dx * clip.speed, 8 * dy * clip.speed), atol=1.0)
        assert read_video(video).direction in DIRECTIONS  # the trained directions only: the nearest axis
    for direction in DIRECTIONS:  # an axis motion stays itself when the diagonal can be read
        clip = random_clip(rng, 9, 64, direction=direction)
        assert read_video(render(clip, 9, 64), PALETTE, MOTIONS).direction == direction
    with pytest.raises(ValueError, match="unknown direction 'sideways'"):
        random_clip(rng, 9, 64, direction="sideways")


def test_dataset_draws_the_given_directions_and_the_default_draws_are_unchanged(tmp_path):
    mixed = read_annotations(write_shapes_dataset(str(tmp_path / "mixed"), 8, seed=3, frames=9, size=32,
                                                  directions=["diagonally", "left"]))
    assert {r["direction"] for r in mixed} == {"diagonally", "left"}
    plain = read_annotations(write_shapes_dataset(str(tmp_path / "plain"), 4, seed=3, frames=9, size=32))
    again = read_annotations(write_shapes_dataset(str(tmp_path / "again"), 4, seed=3, frames=9, size=32,
                                                  directions=list(DIRECTIONS)))
    assert [r["text"] for r in plain] == [r["text"] for r in again]


def test_reader_names_the_first_frames_colour_apart_from_the_clips():
    clip = random_clip(np.random.default_rng(2), 9, 64, colour="red")
    video = render(clip, 9, 64)
    video[0] = render(dataclasses.replace(clip, colour="yellow"), 1, 64)[0]  # frame 0 drifted to yellow
    reading = read_video(video)
    assert (reading.colour, reading.first_colour) == ("red", "yellow")


def test_reader_refuses_an_empty_video_and_names_a_static_one():
    with pytest.raises(ValueError, match="shows in only 0"):
        read_video(np.broadcast_to(np.asarray(BACKGROUND, np.uint8), (9, 32, 32, 3)))
    still = render(random_clip(np.random.default_rng(1), 1, 32), 1, 32)
    assert read_video(np.repeat(still, 9, axis=0)).direction == "none"


def test_held_out_wordings_are_not_training_wordings_and_the_vocabulary_covers_them():
    assert not set(HELD_OUT_TEMPLATES) & set(TRAIN_TEMPLATES)
    words = set(vocabulary())
    assert set(COLOURS) | set(SHAPES) | set(DIRECTIONS) | {"is", "hyper", "8k"} <= words


def test_dataset_is_a_jsonl_of_mp4s_with_captions(tmp_path):
    path = write_shapes_dataset(str(tmp_path), 6, seed=3, frames=9, size=32)
    records = read_annotations(path)
    assert len(records) == 6
    for record in records:
        video = read_frames(record["video"], 9)
        assert video.shape == (9, 32, 32, 3)
        reading = read_video(video)  # the H.264 round trip keeps colour and motion
        assert (reading.colour, reading.direction, reading.shape) == \
            (record["colour"], record["direction"], record["shape"])
        text = record["text"].removesuffix(PROMPT_SUFFIX)
        assert any(text == t.format(**{k: record[k] for k in ("colour", "shape", "direction")})
                   for t in TRAIN_TEMPLATES)
    assert json.loads(open(path).readline())["video"].startswith("videos/")  # relative: the folder can move
    assert write_shapes_dataset(str(tmp_path / "again"), 6, seed=3, frames=9, size=32)
    assert [r["text"] for r in read_annotations(str(tmp_path / "again" / "train.jsonl"))] == \
        [r["text"] for r in records]


def test_reader_counts_separate_pieces():
    rng = np.random.default_rng(2)
    first = random_clip(rng, 9, 64, shape="square", direction="right")
    ghost = first.__class__(**{**first.__dict__, "y": 64 - first.y})  # the same square mirrored top to bottom
    video = np.maximum(render(first, 9, 64), render(ghost, 9, 64))
    apart = abs(first.y - ghost.y) > 2 * first.radius + 2
    assert read_video(video).pieces == (2 if apart else 1)


def test_judge_command_prints_one_line_per_clip_and_fails_on_an_unreadable_one(tmp_path, capsys):
    path = write_shapes_dataset(str(tmp_path), 2, seed=5, frames=9, size=32)
    records = read_annotations(path)
    videos = [r["video"] for r in records]
    assert judge.main(videos) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[1].split(" (")[0] for line in lines] == \
        [f"{r['colour']} {r['shape']} moving {r['direction']}" for r in records]
    assert judge.main([str(tmp_path / "missing.mp4")]) == 1
    assert "unreadable" in capsys.readouterr().out
