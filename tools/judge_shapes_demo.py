"""Judge a moving-shapes snapshot on prompts in the held-out wordings: how many of its videos show the prompted
colour (over the clip and in its first frame), direction and shape in one clean piece (the figures of the README's
demo table).

    python tools/judge_shapes_demo.py                                   # the embedded demo, seed 0
    python tools/judge_shapes_demo.py --snapshot out/snap --seed 1 -- --guidance-scale 5
    python tools/judge_shapes_demo.py --figure docs/shapes_demo.png    # also the README's figure

Two prompt sets (`pyramid_jax.demo.captions.held_out_prompts`): "directions", every colour with every direction
(24), and "shapes", every colour with every shape (18). Both go through `sample.py` as one batch with the snapshot's
sampling defaults (arguments after `--` are passed on); `pyramid_jax.demo.judge` reads every video. Prints each
wrong reading, then a table of right readings per set. `--figure` also samples the README figure's six prompts (every
colour once, in held-out wordings) as one batch and writes their frame strips one under the other.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyramid_jax.errors import ArgumentError, UserError, add_debug_flag, run_cli  # noqa: E402 (after the path setup)
from pyramid_jax.io.atomic import atomic_file, check_writable  # noqa: E402

SETS = ("directions", "shapes")
ASPECTS = ("colour", "frame-0 colour", "direction", "shape", "one piece")
FIGURE = (("red", "circle", "right"), ("blue", "square", "left"), ("yellow", "triangle", "down"),
          ("green", "circle", "up"), ("purple", "square", "left"), ("cyan", "triangle", "right"))


def main(argv=None) -> int:
    return run_cli(judge, argv)


def judge(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--snapshot", default=os.path.join(ROOT, "checkpoints", "shapes_demo"), help="snapshot folder")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--figure", metavar="PNG", help="also write the README figure here")
    p.add_argument("sample_args", nargs="*", help="after --: more sample.py arguments, e.g. --guidance-scale 5")
    add_debug_flag(p)
    args = p.parse_args(argv)
    if args.figure:  # checked before any model loads
        if os.path.splitext(args.figure)[1].lower() != ".png":
            raise ArgumentError(f"--figure {args.figure}: give a .png path")
        check_writable(args.figure, "--figure")
    table = judge_snapshot(args.snapshot, args.seed, args.sample_args)
    if args.figure:
        write_figure(args.figure, args.snapshot, args.seed, args.sample_args)
    print(f"\n{args.snapshot}, seed {args.seed}: right readings\n| prompts | " + " | ".join(ASPECTS) + " |\n"
          + "|---" * (len(ASPECTS) + 1) + "|")
    for name, (right, count) in table.items():
        print(f"| {name} | " + " | ".join(f"{right[a]}/{count}" for a in ASPECTS) + " |")
    return 0


def sample_frames(prompts: list[str], snapshot: str, seed: int, sample_args: list[str]) -> list[np.ndarray]:
    """uint8 `[T, H, W, 3]` videos of `prompts`, sampled by `sample.py` as one batch."""
    import sample
    from pyramid_jax.demo.judge import read_frame_folder

    with tempfile.TemporaryDirectory() as out:
        flags = ["--snapshot", snapshot, "--seed", str(seed), "--output", os.path.join(out, "video"),
                 *sum((["--prompt", prompt] for prompt in prompts), []), *sample_args]
        if sample.main(flags) != 0:
            raise UserError("sample.py failed; its error is above")
        return [read_frame_folder(os.path.join(out, f"video_{i}")) for i in range(len(prompts))]


def write_figure(path: str, snapshot: str, seed: int, sample_args: list[str]) -> None:
    """The frame strips of the `FIGURE` prompts' videos, one under the other, `STRIP_GAP` white pixels apart."""
    from PIL import Image

    from pyramid_jax.demo.captions import in_held_out_wordings
    from pyramid_jax.demo.judge import read_video
    from pyramid_jax.io.video import STRIP_GAP, frame_strip

    prompts = [case.prompt for case in in_held_out_wordings(FIGURE)]
    videos = sample_frames(prompts, snapshot, seed, sample_args)
    for prompt, video in zip(prompts, videos):
        try:
            print(f"figure: {prompt!r}: {read_video(video).describe()}")
        except ValueError as error:
            print(f"figure: {prompt!r}: unreadable: {error}")
    strips = [frame_strip(video) for video in videos]
    gap = np.full((STRIP_GAP, strips[0].shape[1], 3), 255, np.uint8)
    with atomic_file(path) as tmp:
        Image.fromarray(np.concatenate(sum(([strip, gap] for strip in strips), [])[:-1])).save(tmp, format="png")
    print(f"figure of {len(prompts)} prompts -> {path}")


def judge_snapshot(snapshot: str, seed: int, sample_args: list[str]) -> dict[str, tuple[dict[str, int], int]]:
    """{set: ({aspect: right readings}, prompts)} of `snapshot`'s videos of both prompt sets; an unreadable video
    counts as wrong in every aspect."""
    from pyramid_jax.demo.captions import held_out_prompts
    from pyramid_jax.demo.judge import read_video

    cases = {name: held_out_prompts(name) for name in SETS}
    everything = [case for name in SETS for case in cases[name]]
    readings = []
    for case, video in zip(everything, sample_frames([case.prompt for case in everything], snapshot, seed,
                                                     sample_args)):
        try:
            readings.append(read_video(video))
        except ValueError as error:
            print(f"{case.prompt!r}: unreadable: {error}")
            readings.append(None)
    table, start = {}, 0
    for name in SETS:
        right = dict.fromkeys(ASPECTS, 0)
        for case, reading in zip(cases[name], readings[start:start + len(cases[name])]):
            if reading is None:
                continue
            got = {"colour": reading.colour == case.colour, "frame-0 colour": reading.first_colour == case.colour,
                   "direction": reading.direction == case.direction,
                   "shape": reading.shape == case.shape, "one piece": reading.pieces == 1}
            for aspect, ok in got.items():
                right[aspect] += ok
            if not all(got.values()):
                print(f"{case.prompt!r}: {reading.describe()}")
        table[name], start = (right, len(cases[name])), start + len(cases[name])
    return table


if __name__ == "__main__":
    sys.exit(main())
