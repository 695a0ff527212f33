"""Teach the embedded demo (checkpoints/shapes_demo) a word it has never seen with a LoRA trained on CPU, and judge
the base DiT and the LoRA on held-out wordings.

    python tools/teach_shapes_lora.py                    # "diagonally": data, LoRA run, judge (under out/shapes_lora)
    python tools/teach_shapes_lora.py --evaluate-only    # the judge table of a finished run
    python tools/teach_shapes_lora.py --word orange --work out/shapes_orange

The lessons: "diagonally" (default), a motion towards the lower right; "orange", a colour between red and yellow.

1. the snapshot: the demo's VAE and DiT, its text stack with the word added (`text_stack.add_words`: a new token and
   a random embedding row; every old word encodes as before);
2. clips from the demo's own generator (pyramid_jax/demo/), half of them showing the new word and half the trained
   colours and directions (replayed, so that they are not forgotten), captioned with the training wordings; their
   latents and text features (tools/extract_*.py);
3. `train.py --config configs/train/shapes_lora.py` with this run's folders as overrides (and any --set): LoRA
   adapters, the DiT frozen; they go to <work>/lora_run/lora;
4. `sample.py` with and without `--lora` on prompts worded as no training caption is (the held-out wordings): with
   the new word, and with trained colours and directions only; `pyramid_jax.demo.judge` reads each video (naming
   the trained colours and directions and the taught word) and a table gives, per model, how many are right.

Each command is printed before it runs; re-running keeps finished steps and resumes training.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyramid_jax.errors import UserError, add_debug_flag, run_cli  # noqa: E402 (after the path setup)

DEMO = os.path.join(ROOT, "checkpoints", "shapes_demo")
CONFIG = os.path.join(ROOT, "configs", "train", "shapes_lora.py")
DIT_VARIANT = "diffusion_transformer_384p"


@dataclasses.dataclass(frozen=True)
class Case:
    """One held-out prompt and what its video should show."""

    group: str  # "taught" (the prompt has the new word) or "trained" (trained words only)
    prompt: str
    colour: str
    direction: str


def run(*args: str) -> None:
    print("$", " ".join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in args), flush=True)
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if done.returncode:
        raise UserError(f"{' '.join(args[:3])} ... failed (exit status {done.returncode}); its error is above")


def lesson_draws(word: str) -> tuple[list[str], list[str]]:
    """The colours and directions clips are drawn from (a name repeated is drawn more often): the new word in half
    of the clips, the trained ones in the rest."""
    from pyramid_jax.demo.shapes import COLOURS, DIRECTIONS, TAUGHT_COLOURS, TAUGHT_DIRECTIONS

    if word in TAUGHT_DIRECTIONS:
        return list(COLOURS), [word] * len(DIRECTIONS) + list(DIRECTIONS)
    if word in TAUGHT_COLOURS:
        return [word] * len(COLOURS) + list(COLOURS), list(DIRECTIONS)
    raise UserError(f"--word {word!r} is not a taught word; choose one of {[*TAUGHT_DIRECTIONS, *TAUGHT_COLOURS]}")


def prepare(work: str, word: str, clips: int, size: int, frames: int) -> None:
    from tqdm import tqdm

    from pyramid_jax.demo.dataset import write_shapes_dataset
    from pyramid_jax.demo.text_stack import add_words
    from pyramid_jax.io.atomic import atomic_directory

    snapshot, data = os.path.join(work, "snapshot"), os.path.join(work, "data")
    if not os.path.isdir(snapshot):
        with atomic_directory(snapshot) as tmp:
            add_words(DEMO, tmp, [word])
            for name in ("causal_video_vae", DIT_VARIANT):
                shutil.copytree(os.path.join(DEMO, name), os.path.join(tmp, name))
    if not os.path.isfile(os.path.join(data, "train.jsonl")):
        print(f"writing {clips} clips to {data}", flush=True)
        colours, directions = lesson_draws(word)
        write_shapes_dataset(data, clips, seed=1, frames=frames, size=size, colours=colours, directions=directions,
                             progress=tqdm)
    latents, features = os.path.join(work, "latents"), os.path.join(work, "features")
    if not os.path.isfile(os.path.join(latents, "annotation.jsonl")):
        run("tools/extract_video_latents.py", "--snapshot", snapshot, "--annotation", os.path.join(data, "train.jsonl"),
            "--output-dir", latents, "--resolutions", f"{size}x{size}", "--num-frames", str(frames),
            "--dtype", "float32", "--save-dtype", "float32")
    if not os.path.isfile(os.path.join(features, "annotation.jsonl")):
        run("tools/extract_text_features.py", "--snapshot", snapshot, "--annotation",
            os.path.join(latents, "annotation.jsonl"), "--output-dir", features, "--dtype", "float32",
            "--save-dtype", "float32")


def train(work: str, overrides: list[str]) -> None:
    folders = [f"snapshot={os.path.join(work, 'snapshot')}", f"output_dir={os.path.join(work, 'lora_run')}",
               f"data.annotation={os.path.join(work, 'features', 'annotation.jsonl')}",
               f"data.null_text={os.path.join(work, 'features', 'null_text.npz')}"]
    run("train.py", "--config", CONFIG, *folders, *overrides)


def held_out_cases(word: str, count: int) -> list[Case]:
    """`count` prompts with the new word and `count` with trained words only, in the held-out wordings, colours,
    shapes and directions taken in turn."""
    from pyramid_jax.demo.captions import HELD_OUT_TEMPLATES
    from pyramid_jax.demo.shapes import COLOURS, DIRECTIONS, SHAPES, TAUGHT_DIRECTIONS

    colours, directions, cases = list(COLOURS), list(DIRECTIONS), []
    for group in ("taught", "trained"):
        for i in range(count):
            colour, direction = colours[i % len(colours)], directions[i % len(directions)]
            if group == "taught":
                colour, direction = (colour, word) if word in TAUGHT_DIRECTIONS else (word, direction)
            shape = SHAPES[(i // len(colours)) % len(SHAPES)] if group == "taught" else SHAPES[i % len(SHAPES)]
            template = HELD_OUT_TEMPLATES[(i + i // len(colours)) % len(HELD_OUT_TEMPLATES)]
            cases.append(Case(group, template.format(colour=colour, shape=shape, direction=direction), colour,
                              direction))
    return cases


def evaluate(work: str, word: str, count: int, seed: int = 0, models: tuple[str, ...] = ("base", "lora"),
             scale: float = 1.0) -> dict[str, dict[str, int]]:
    """Samples the held-out prompts with the base DiT and with the LoRA, judges every video (the trained colours and
    directions and the taught word among the possible readings) and prints each reading and the table; returns
    {model: {"taught_<what>" / "taught_other" / "trained_colour" / "trained_direction": right readings}}."""
    from pyramid_jax.demo.shapes import TAUGHT_DIRECTIONS

    cases = held_out_cases(word, count)
    taught_kind = "direction" if word in TAUGHT_DIRECTIONS else "colour"
    other_kind = "colour" if taught_kind == "direction" else "direction"
    results = {model: sample_and_judge(work, model, word, cases, seed, scale) for model in models}
    print_table(results, word, taught_kind, other_kind, count)
    return results


def sample_and_judge(work: str, model: str, word: str, cases: list[Case], seed: int, scale: float = 1.0
                     ) -> dict[str, int]:
    """`sample.py` on every case's prompt with the base DiT or (`model` "lora") with the LoRA at `scale`, each video
    judged."""
    import sample
    from pyramid_jax.demo.judge import read_frame_folder, read_video
    from pyramid_jax.demo.shapes import COLOURS, DIRECTIONS, MOTIONS, PALETTE

    # The judge knows the trained words and the word taught (another taught one could only be misread as it).
    palette = {**COLOURS, **({word: PALETTE[word]} if word in PALETTE else {})}
    directions = {**DIRECTIONS, **({word: MOTIONS[word]} if word in MOTIONS else {})}
    flags = ["--snapshot", os.path.join(work, "snapshot"), "--negative-prompt", "", "--seed", str(seed),
             *sum((["--prompt", c.prompt] for c in cases), [])]
    extra = ["--lora", f"{os.path.join(work, 'lora_run', 'lora')}:{scale:g}"] if model == "lora" else []
    out = os.path.join(work, "eval", model)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    print("$ sample.py", " ".join(extra), f"({len(cases)} held-out prompts, seed {seed}) -> "
          f"{os.path.relpath(out, ROOT)}", flush=True)
    started = time.perf_counter()
    if sample.main(flags + extra + ["--output", os.path.join(out, "video")]) != 0:
        raise UserError(f"sample.py for the {model} model failed; its error is above")
    print(f"  sampled in {time.perf_counter() - started:.0f} s", flush=True)
    right = dict.fromkeys(("taught_colour", "taught_direction", "trained_colour", "trained_direction"), 0)
    for i, case in enumerate(cases):
        try:
            reading = read_video(read_frame_folder(os.path.join(out, f"video_{i}")), palette, directions)
        except ValueError as error:
            print(f"  {model}: {case.prompt!r}: unreadable ({error})")
            continue
        print(f"  {model}: {case.prompt!r}: {reading.colour} {reading.shape} moving {reading.direction} "
              f"(travel {reading.shift[0]:+.1f}, {reading.shift[1]:+.1f} px)")
        right[f"{case.group}_colour"] += reading.colour == case.colour
        right[f"{case.group}_direction"] += reading.direction == case.direction
    return right


def print_table(results: dict[str, dict[str, int]], word: str, taught_kind: str, other_kind: str, count: int) -> None:
    heads = [f"'{word}' prompts: {taught_kind} {word}", f"'{word}' prompts: {other_kind}",
             "trained prompts: colour", "trained prompts: direction"]
    keys = [f"taught_{taught_kind}", f"taught_{other_kind}", "trained_colour", "trained_direction"]
    print("\n| model | " + " | ".join(heads) + " |\n" + "|---" * (len(heads) + 1) + "|")
    for model, right in results.items():
        print(f"| {model} | " + " | ".join(f"{right[k]}/{count}" for k in keys) + " |")


def main(argv=None) -> int:
    return run_cli(teach, argv)


def teach(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--word", default="diagonally", help="the word to teach: diagonally (default) or orange")
    p.add_argument("--work", default=os.path.join(ROOT, "out", "shapes_lora"), help="working folder")
    p.add_argument("--clips", type=int, default=640, help="training clips to generate (half of them new)")
    p.add_argument("--prompts", type=int, default=24, help="held-out prompts per group (new word; trained words)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed of the evaluation")
    p.add_argument("--scale", type=float, default=1.0, help="the LoRA's scale in the evaluation")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a train.py config override, e.g. loop.num_steps=1000 (with step.optimizer.decay_steps=1000 for "
                        "the whole cosine); repeat the flag for several")
    p.add_argument("--evaluate-only", action="store_true", help="skip data and training")
    add_debug_flag(p)
    args = p.parse_args(argv)
    from pyramid_jax.demo.models import FRAMES, SIZE

    lesson_draws(args.word)  # checks --word
    if args.clips < 1 or args.prompts < 1:
        raise UserError(f"--clips and --prompts must be at least 1; got {args.clips} and {args.prompts}")
    if not os.path.isdir(DEMO):
        raise UserError(f"the demo snapshot {DEMO} is missing (tools/build_shapes_demo.py builds it)")
    work = os.path.abspath(args.work)
    if not args.evaluate_only:
        started = time.perf_counter()
        prepare(work, args.word, args.clips, SIZE, FRAMES)
        print(f"data ready in {time.perf_counter() - started:.0f} s", flush=True)
        started = time.perf_counter()
        train(work, args.set)
        print(f"LoRA trained in {time.perf_counter() - started:.0f} s", flush=True)
    elif not os.path.isdir(os.path.join(work, "lora_run", "lora")):
        raise UserError(f"--evaluate-only: {work}/lora_run/lora does not exist (run without it first)")
    evaluate(work, args.word, args.prompts, args.seed, scale=args.scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
