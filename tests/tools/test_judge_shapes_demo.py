"""tools/judge_shapes_demo.py on the embedded demo, and the held-out prompt sets it judges."""

import re

import pytest

from pyramid_jax.demo.captions import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES, held_out_prompts
from pyramid_jax.demo.shapes import COLOURS, DIRECTIONS, SHAPES
from tools import judge_shapes_demo


def test_prompt_sets_cover_every_pairing_in_held_out_wordings():
    directions, shapes = held_out_prompts("directions"), held_out_prompts("shapes")
    assert {(c.colour, c.direction) for c in directions} == {(c, d) for c in COLOURS for d in DIRECTIONS}
    assert {(c.colour, c.shape) for c in shapes} == {(c, s) for c in COLOURS for s in SHAPES}
    trained = {t.format(colour=c.colour, shape=c.shape, direction=c.direction)
               for c in directions + shapes for t in TRAIN_TEMPLATES}
    held_out = {t.format(colour=c.colour, shape=c.shape, direction=c.direction)
                for c in directions + shapes for t in HELD_OUT_TEMPLATES}
    assert all(c.prompt in held_out and c.prompt not in trained for c in directions + shapes)
    with pytest.raises(ValueError, match="kind must be"):
        held_out_prompts("colours")


def test_the_tool_prints_a_table_whose_counts_match_its_readings(capsys):
    assert judge_shapes_demo.main(["--", "--steps", "3,3,3", "--video-steps", "3,3,3"]) == 0
    out = capsys.readouterr().out
    rows = dict(re.findall(r"^\| (directions|shapes) \| (.*) \|$", out, re.M))
    wrong = [line for line in out.splitlines() if line.startswith("'")]  # one line per prompt with a wrong reading
    for name, count in (("directions", 24), ("shapes", 18)):
        cells = rows[name].split(" | ")
        assert len(cells) == 5 and all(cell.endswith(f"/{count}") for cell in cells)
        all_right = min(int(cell.split("/")[0]) for cell in cells)
        assert all_right >= count - sum(any(c.prompt == line.split("'")[1] for c in held_out_prompts(name))
                                        for line in wrong)
