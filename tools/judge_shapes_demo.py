"""Judge a moving-shapes snapshot on prompts in the held-out wordings: how many of its videos show the prompted
colour (over the clip and in its first frame), direction and shape in one clean piece (the figures of the README's demo table).

    python tools/judge_shapes_demo.py                                   # the embedded demo, seed 0
    python tools/judge_shapes_demo.py --snapshot out/snap --seed 1 -- --guidance-scale 5

Two prompt sets (`pyramid_jax.demo.captions.held_out_prompts`): "directions", every colour with every direction
(24), and "shapes", every colour with every shape (18). Both go through `sample.py` as one batch with the snapshot's
sampling defaults (arguments after `--` are passed on); `pyramid_jax.demo.judge` reads every video. Prints each
wrong reading, then a table of right readings per set.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyramid_jax.errors import UserError, add_debug_flag, run_cli  # noqa: E402 (after the path setup)

SETS = ("directions", "shapes")
ASPECTS = ("colour", "frame-0 colour", "direction", "shape", "one piece")


def main(argv=None) -> int:
    return run_cli(judge, argv)


def judge(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--snapshot", default=os.path.join(ROOT, "checkpoints", "shapes_demo"), help="snapshot folder")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("sample_args", nargs="*", help="after --: more sample.py arguments, e.g. --guidance-scale 5")
    add_debug_flag(p)
    args = p.parse_args(argv)
    table = judge_snapshot(args.snapshot, args.seed, args.sample_args)
    print(f"\n{args.snapshot}, seed {args.seed}: right readings\n| prompts | " + " | ".join(ASPECTS) + " |\n"
          + "|---" * (len(ASPECTS) + 1) + "|")
    for name, (right, count) in table.items():
        print(f"| {name} | " + " | ".join(f"{right[a]}/{count}" for a in ASPECTS) + " |")
    return 0


def judge_snapshot(snapshot: str, seed: int, sample_args: list[str]) -> dict[str, tuple[dict[str, int], int]]:
    """{set: ({aspect: right readings}, prompts)} of `snapshot`'s videos of both prompt sets; an unreadable video
    counts as wrong in every aspect."""
    import sample
    from pyramid_jax.demo.captions import held_out_prompts
    from pyramid_jax.demo.judge import read_frame_folder, read_video

    cases = {name: held_out_prompts(name) for name in SETS}
    everything = [case for name in SETS for case in cases[name]]
    with tempfile.TemporaryDirectory() as out:
        flags = ["--snapshot", snapshot, "--seed", str(seed), "--output", os.path.join(out, "video"),
                 *sum((["--prompt", case.prompt] for case in everything), []), *sample_args]
        if sample.main(flags) != 0:
            raise UserError("sample.py failed; its error is above")
        readings = []
        for i, case in enumerate(everything):
            try:
                readings.append(read_video(read_frame_folder(os.path.join(out, f"video_{i}"))))
            except ValueError as error:
                print(f"{case.prompt!r}: unreadable ({error})")
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
                print(f"{case.prompt!r}: {reading.colour} (frame 0 {reading.first_colour}) {reading.shape} moving "
                      f"{reading.direction} ({reading.pieces} piece(s), travel {reading.shift[0]:+.1f}, {reading.shift[1]:+.1f} px)")
        table[name], start = (right, len(cases[name])), start + len(cases[name])
    return table


if __name__ == "__main__":
    sys.exit(main())
