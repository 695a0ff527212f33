"""tools/judge_shapes_demo.py on the embedded demo, and the held-out prompt sets it judges."""

import re

import numpy as np
import pytest
from PIL import Image

from pyramid_jax.demo.captions import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES, held_out_prompts
from pyramid_jax.demo.shapes import COLOURS, DIRECTIONS, SHAPES
from pyramid_jax.errors import ErrorExit
from pyramid_jax.io.video import STRIP_GAP
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


def test_the_tool_prints_a_table_whose_counts_match_its_readings_and_writes_the_figure(capsys, tmp_path):
    figure = tmp_path / "figure.png"
    assert judge_shapes_demo.main(["--figure", str(figure), "--", "--steps", "3,3,3", "--video-steps", "3,3,3"]) == 0
    out = capsys.readouterr().out
    strips, frames, side, gap = len(judge_shapes_demo.FIGURE), 9, 128, STRIP_GAP  # 64x64 frames scaled up 2x
    image = np.asarray(Image.open(figure))
    assert image.shape == (strips * side + (strips - 1) * gap, frames * side + (frames - 1) * gap, 3)
    assert (image[side:side + gap] == 255).all() and (image[:side, side:side + gap] == 255).all()
    rows = dict(re.findall(r"^\| (directions|shapes) \| (.*) \|$", out, re.M))
    wrong = [line for line in out.splitlines() if line.startswith("'")]  # one line per prompt with a wrong reading
    for name, count in (("directions", 24), ("shapes", 18)):
        cells = rows[name].split(" | ")
        assert len(cells) == 5 and all(cell.endswith(f"/{count}") for cell in cells)
        all_right = min(int(cell.split("/")[0]) for cell in cells)
        assert all_right >= count - sum(any(c.prompt == line.split("'")[1] for c in held_out_prompts(name))
                                        for line in wrong)


@pytest.mark.parametrize("name, problem", [("figure.jpg", "give a .png path"), ("a_file/figure.png", "is a file")])
def test_a_bad_figure_path_is_an_error_naming_it_before_any_sampling(tmp_path, capsys, name, problem):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ErrorExit):
        judge_shapes_demo.main(["--figure", str(tmp_path / name)])
    err = capsys.readouterr()
    assert err.err.startswith("error: --figure") and problem in err.err and "sampled" not in err.out
