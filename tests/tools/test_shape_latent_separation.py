"""tools/shape_latent_separation.py: its measure, its variants and its table on the embedded demo's VAE."""

import dataclasses
import re

import numpy as np
import pytest

from pyramid_jax.demo.shapes import COLOURS, random_clip
from pyramid_jax.errors import ErrorExit
from tools import shape_latent_separation as tool


def test_a_change_is_measured_against_the_circle_clips_foreground():
    circle = np.zeros((1, 2, 4, 4, 3))
    circle[0, 0, 1, 1] = (2.0, 0.0, 0.0)  # the foreground: norm 2 above a zero median
    moved = circle.copy()
    moved[0, 1, 2, 2, 1] = 1.0
    np.testing.assert_allclose(tool.relative_changes(np.stack([circle[0], circle[0], moved[0]])), [0.0, 0.5])


def test_each_variant_changes_one_thing_of_the_circle():
    circle = random_clip(np.random.default_rng(0), 9, 64, shape="circle")
    fields = {f.name: getattr(circle, f.name) for f in dataclasses.fields(circle)}
    changed = {name: {k for k, v in fields.items() if getattr(clip, k) != v}
               for name, clip in tool.variants(circle).items()}
    assert changed == {"square": {"shape"}, "triangle": {"shape"}, "colour": {"colour"}, "2 px right": {"x"}}
    assert tool.variants(circle)["2 px right"].x == circle.x + 2.0
    assert tool.variants(circle)["colour"].colour in COLOURS


def test_the_tool_prints_every_change_of_the_demo_vae(capsys):
    assert tool.main(["--clips", "2"]) == 0
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", capsys.readouterr().out, re.M)
    assert [row[0] for row in rows] == ["square", "triangle", "colour", "2 px right"]
    for _, mean, least, most, pixels in rows:
        assert 0 < float(least) <= float(mean) <= float(most) and float(pixels) > 0


def test_no_clips_is_an_error_naming_the_flag(capsys):
    with pytest.raises(ErrorExit):
        tool.main(["--clips", "0"])
    assert "--clips 0" in capsys.readouterr().err
