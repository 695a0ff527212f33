"""Build the embedded demo snapshot (checkpoints/shapes_demo) from nothing, on CPU: every step is our own code.

    python tools/build_shapes_demo.py

1. a procedural dataset: 64x64 clips of 9 frames, one coloured shape moving left/right/up/down, captioned
   (pyramid_jax/demo), written as mp4 + jsonl under out/shapes_demo/data;
2. the untrained models: word-level tokenizers with small random CLIP and T5 encoders (kept frozen), and the
   config.json of the small VAE and DiT (pyramid_jax/demo/models.py);
3. `train.py --config configs/train/shapes_vae_images.py`, then `configs/train/shapes_vae.py`, then
   `configs/train/shapes_vae_decoder.py`: the VAE, from scratch, on single frames, then on whole clips, then its
   decoder alone on whole clips (the encoder, and so the latents, as stage 2 left them);
4. the VAE rescaled to code latents that reach the DiT with zero mean and unit spread (an exact refit of its
   latent space, `pyramid_jax/vae_training/latent_scale.py`), its decoder trained once more
   (`configs/train/shapes_vae_rescaled_decoder.py`), then `tools/extract_video_latents.py` and
   `tools/extract_text_features.py` with that VAE and the text encoders;
5. `train.py --config configs/train/shapes_dit.py`: the DiT, from scratch, on those latents;
6. the snapshot: text stack + trained VAE + trained DiT, written atomically to --output.

Each command is printed before it runs. Re-running continues: finished steps are kept and training resumes from its
last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyramid_jax.errors import UserError, add_debug_flag, run_cli  # noqa: E402 (after the path setup)
WORK = os.path.join(ROOT, "out", "shapes_demo")  # the working folder the two training configs read
LATENT_STATISTICS_CLIPS = 256  # training clips whose latents set the VAE's rescaling


def run(*args: str) -> None:
    command = [sys.executable, *args]
    print("$", " ".join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in args), flush=True)
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # logs as they come
    if done.returncode:
        raise UserError(f"{' '.join(args[:3])} ... failed (exit status {done.returncode}); its error is above")


def write_json(path: str, values: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(values, f, indent=2)


def main(argv=None) -> int:
    return run_cli(build, argv)


def build(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=1200, help="training clips to generate")
    p.add_argument("--output", default=os.path.join(ROOT, "checkpoints", "shapes_demo"), help="snapshot folder")
    add_debug_flag(p)
    args = p.parse_args(argv)

    from tqdm import tqdm

    from pyramid_jax.demo.captions import vocabulary
    from pyramid_jax.demo.dataset import write_shapes_dataset
    from pyramid_jax.demo.models import DIT_CONFIG, FRAMES, SAMPLING, SIZE, VAE_CONFIG
    from pyramid_jax.demo.text_stack import write_text_stack
    from pyramid_jax.dit.families import get_family
    from pyramid_jax.io.atomic import atomic_directory
    from pyramid_jax.snapshot import SAMPLING_FILE, VAE_FOLDER, text_folder_names
    from pyramid_jax.training.data.annotations import read_annotations
    from pyramid_jax.training.data.frames import read_frames
    from pyramid_jax.vae_training.latent_scale import standardize_vae_folder

    family = get_family(DIT_CONFIG["_class_name"])
    dit_variant = family.variants[0].folder

    data, init, staged = (os.path.join(WORK, name) for name in ("data", "init", "snapshot_vae"))
    if not os.path.isfile(os.path.join(data, "train.jsonl")):
        print(f"writing {args.clips} clips to {data}", flush=True)
        write_shapes_dataset(data, args.clips, seed=0, frames=FRAMES, size=SIZE, progress=tqdm)
    if not os.path.isdir(init):
        with atomic_directory(init) as tmp:
            write_text_stack(tmp, vocabulary(), seed=0)
            write_json(os.path.join(tmp, VAE_FOLDER, "config.json"), VAE_CONFIG)
            write_json(os.path.join(tmp, dit_variant, "config.json"), DIT_CONFIG)

    for stage in ("shapes_vae_images.py", "shapes_vae.py", "shapes_vae_decoder.py"):
        run("train.py", "--config", os.path.join(ROOT, "configs", "train", stage))
    rescaled = os.path.join(WORK, "vae_rescaled")
    if not os.path.isdir(rescaled):
        with atomic_directory(rescaled) as tmp:
            shutil.copytree(os.path.join(WORK, "vae_decoder_run", "model"), tmp, dirs_exist_ok=True)
            records = read_annotations(os.path.join(data, "train.jsonl"))[:LATENT_STATISTICS_CLIPS]
            clips = np.stack([read_frames(record["video"], FRAMES) for record in records])
            a, b = standardize_vae_folder(tmp, clips, family.name)
            print(f"VAE latents rescaled by {a:.3f} and shifted per channel by {np.round(b, 2).tolist()}", flush=True)
    run("train.py", "--config", os.path.join(ROOT, "configs", "train", "shapes_vae_rescaled_decoder.py"))
    with atomic_directory(staged, overwrite=True) as tmp:  # text stack + trained VAE, for the extraction tools
        for name in text_folder_names(family):
            shutil.copytree(os.path.join(init, name), os.path.join(tmp, name))
        shutil.copytree(os.path.join(WORK, "vae_rescaled_decoder_run", "model"), os.path.join(tmp, VAE_FOLDER))
    run("tools/extract_video_latents.py", "--snapshot", staged, "--annotation", os.path.join(data, "train.jsonl"),
        "--output-dir", os.path.join(WORK, "latents"), "--resolutions", f"{SIZE}x{SIZE}", "--num-frames", str(FRAMES),
        "--dtype", "float32", "--save-dtype", "float32")
    run("tools/extract_text_features.py", "--snapshot", staged, "--annotation",
        os.path.join(WORK, "latents", "annotation.jsonl"), "--output-dir", os.path.join(WORK, "features"),
        "--dtype", "float32", "--save-dtype", "float32")
    run("train.py", "--config", os.path.join(ROOT, "configs", "train", "shapes_dit.py"))

    with atomic_directory(args.output, overwrite=True) as tmp:
        shutil.copytree(staged, tmp, dirs_exist_ok=True)
        shutil.copytree(os.path.join(WORK, "dit_run", "model"), os.path.join(tmp, dit_variant))
        write_json(os.path.join(tmp, dit_variant, SAMPLING_FILE), SAMPLING)
    print(f"demo snapshot -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
