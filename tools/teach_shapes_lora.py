"""Teach the embedded demo (checkpoints/shapes_demo) a colour word it has never seen, "orange", with a LoRA trained
on CPU, and judge base and LoRA on held-out wordings.

    python tools/teach_shapes_lora.py                  # data, LoRA run, evaluation (under out/shapes_lora)
    python tools/teach_shapes_lora.py --evaluate-only  # the evaluation of a finished run

1. the snapshot: the demo's VAE and DiT, its text stack with "orange" added as a new word (`text_stack.add_words`:
   a new token and random embedding row; every old word encodes as before);
2. clips from the demo's own generator, half of them orange, half in the trained colours (so these are not
   forgotten), captioned with the training wordings; their latents and text features (tools/extract_*.py);
3. `train.py --config configs/train/shapes_orange_lora.py`: rank-8 adapters, the DiT frozen; the adapters go to
   out/shapes_lora/lora_run/lora;
4. `sample.py` with and without `--lora` on prompts worded as no training caption is (the held-out wordings), for
   orange and for the trained colours; `pyramid_jax.demo.judge` reads each video's colour (orange included) and
   direction, and one line per model and colour group reports how many are right.

Each command is printed before it runs; re-running keeps finished steps and resumes training.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyramid_jax.errors import UserError, add_debug_flag, run_cli  # noqa: E402 (after the path setup)

WORK = os.path.join(ROOT, "out", "shapes_lora")  # the working folder configs/train/shapes_orange_lora.py reads
DEMO = os.path.join(ROOT, "checkpoints", "shapes_demo")
DIT_VARIANT = "diffusion_transformer_384p"
WORD = "orange"


def run(*args: str) -> None:
    print("$", " ".join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in args), flush=True)
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if done.returncode:
        raise UserError(f"{' '.join(args[:3])} ... failed (exit status {done.returncode}); its error is above")


def prepare(clips: int) -> None:
    from tqdm import tqdm

    from pyramid_jax.demo.dataset import write_shapes_dataset
    from pyramid_jax.demo.models import FRAMES, SIZE
    from pyramid_jax.demo.shapes import COLOURS
    from pyramid_jax.demo.text_stack import add_words
    from pyramid_jax.io.weights import atomic_directory

    snapshot, data = os.path.join(WORK, "snapshot"), os.path.join(WORK, "data")
    if not os.path.isdir(snapshot):
        with atomic_directory(snapshot) as tmp:
            add_words(DEMO, tmp, [WORD])
            for name in ("causal_video_vae", DIT_VARIANT):
                shutil.copytree(os.path.join(DEMO, name), os.path.join(tmp, name))
    if not os.path.isfile(os.path.join(data, "train.jsonl")):
        print(f"writing {clips} clips to {data}", flush=True)
        colours = [WORD] * len(COLOURS) + list(COLOURS)  # half orange
        write_shapes_dataset(data, clips, seed=1, frames=FRAMES, size=SIZE, colours=colours, progress=tqdm)
    latents, features = os.path.join(WORK, "latents"), os.path.join(WORK, "features")
    if not os.path.isfile(os.path.join(latents, "annotation.jsonl")):
        run("tools/extract_video_latents.py", "--snapshot", snapshot, "--annotation", os.path.join(data, "train.jsonl"),
            "--output-dir", latents, "--resolutions", f"{SIZE}x{SIZE}", "--num-frames", str(FRAMES),
            "--dtype", "float32", "--save-dtype", "float32")
    if not os.path.isfile(os.path.join(features, "annotation.jsonl")):
        run("tools/extract_text_features.py", "--snapshot", snapshot, "--annotation",
            os.path.join(latents, "annotation.jsonl"), "--output-dir", features, "--dtype", "float32",
            "--save-dtype", "float32")


def evaluate(per_group: int) -> dict[str, dict[str, int]]:
    """Samples the held-out prompts with the base DiT and with the LoRA; returns {model: {group: right colours}}."""
    import numpy as np
    from PIL import Image

    import sample
    from pyramid_jax.demo.captions import HELD_OUT_TEMPLATES
    from pyramid_jax.demo.judge import read_video
    from pyramid_jax.demo.models import FRAMES
    from pyramid_jax.demo.shapes import COLOURS, DIRECTIONS, PALETTE, SHAPES

    combos = list(itertools.product(SHAPES, DIRECTIONS))
    cases = [(WORD if group == WORD else list(COLOURS)[i % len(COLOURS)], *combos[i % len(combos)], group)
             for group in (WORD, "trained") for i in range(per_group)]
    prompts = [HELD_OUT_TEMPLATES[i % len(HELD_OUT_TEMPLATES)].format(colour=c, shape=s, direction=d)
               for i, (c, s, d, _) in enumerate(cases)]
    defaults = sample.EMBEDDED_DEFAULTS[sample.DEMO_SNAPSHOT]
    flags = ["--snapshot", os.path.join(WORK, "snapshot"), "--width", "64", "--height", "64", "--temp",
             str(defaults["temp"]), "--steps", defaults["steps"], "--video-steps", defaults["video_steps"],
             "--guidance-scale", str(defaults["guidance_scale"]), "--video-guidance-scale",
             str(defaults["video_guidance_scale"]), "--negative-prompt", "", "--no-compile-cache",
             *sum((["--prompt", p] for p in prompts), [])]
    lora = os.path.join(WORK, "lora_run", "lora")
    results = {}
    for model, extra in (("base", []), ("lora", ["--lora", lora])):
        out = os.path.join(WORK, "eval", model)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        print("$ sample.py", " ".join(extra), f"({len(prompts)} held-out prompts) -> {os.path.relpath(out, ROOT)}",
              flush=True)
        assert sample.main(flags + extra + ["--output", os.path.join(out, "video")]) == 0
        right = {WORD: 0, "trained": 0, "direction": 0}
        for i, (colour, _, direction, group) in enumerate(cases):
            folder = os.path.join(out, f"video_{i}")
            frames = np.stack([np.asarray(Image.open(os.path.join(folder, f"frame_{k:05d}.png")).convert("RGB"))
                               for k in range(FRAMES)])
            try:
                reading = read_video(frames, PALETTE)
            except ValueError as error:
                print(f"  {model}: {prompts[i]!r}: {error}")
                continue
            print(f"  {model}: {prompts[i]!r}: {reading.colour} {reading.shape} moving {reading.direction}")
            right[group] += reading.colour == colour
            right["direction"] += reading.direction == direction
        results[model] = right
    for model, right in results.items():
        print(f"{model}: {WORD} right {right[WORD]}/{per_group}, trained colours right {right['trained']}/{per_group}, "
              f"directions right {right['direction']}/{2 * per_group}")
    return results


def main(argv=None) -> int:
    return run_cli(teach, argv)


def teach(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=320, help="training clips to generate (half of them orange)")
    p.add_argument("--prompts", type=int, default=12, help="held-out prompts per group (orange; trained colours)")
    p.add_argument("--evaluate-only", action="store_true", help="skip data and training")
    add_debug_flag(p)
    args = p.parse_args(argv)
    if not os.path.isdir(DEMO):
        sys.exit(f"error: the demo snapshot {DEMO} is missing (tools/build_shapes_demo.py builds it)")
    if not args.evaluate_only:
        prepare(args.clips)
        run("train.py", "--config", os.path.join(ROOT, "configs", "train", "shapes_orange_lora.py"))
    evaluate(args.prompts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
