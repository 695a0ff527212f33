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
# The build's training stages, in order: each config names the folders it reads and writes, and the build reads
# its own paths from them (the dataset, the untrained models, each stage's model, the DiT's features).
VAE_STAGES = ("shapes_vae_images.py", "shapes_vae.py", "shapes_vae_decoder.py")
RESCALED_VAE_STAGE = "shapes_vae_rescaled_decoder.py"  # trains the rescaled VAE's decoder
DIT_STAGE = "shapes_dit.py"
LATENT_STATISTICS_CLIPS = 256  # training clips whose latents set the VAE's rescaling


def run(*args: str) -> None:
    command = [sys.executable, *args]
    print("$", " ".join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in args), flush=True)
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # logs as they come
    if done.returncode:
        raise UserError(f"{' '.join(args[:3])} ... failed (exit status {done.returncode}); its error is above")


def stage_config(name: str):
    """The run config of the training stage `name` (a file in configs/train) and its path."""
    from pyramid_jax.training.config import load_train_config

    path = os.path.join(ROOT, "configs", "train", name)
    return load_train_config(path), path


def check_stages(vae_stages: list, rescaled_decoder: tuple, dit: tuple) -> None:
    """Raises a UserError naming the config file and field of any stage that does not read what the build gives
    it: the untrained VAE of the DiT's `snapshot` folder, each earlier stage's model, the dataset's and the extraction
    tools' annotation files; and the rescaled VAE's stage must train the decoder alone (the DiT's latents stay)."""
    from pyramid_jax.snapshot import VAE_FOLDER
    from pyramid_jax.training.data.storage import NULL_TEXT_FILE

    (images, images_path), (dit_config, dit_path) = vae_stages[0], dit
    features = os.path.dirname(dit_config.data.annotation)
    wanted = [(images_path, "vae", images.vae, os.path.join(dit_config.snapshot, VAE_FOLDER)),
              (images_path, "data.annotation", os.path.basename(images.data.annotation), "train.jsonl"),
              (rescaled_decoder[1], "decoder_only", rescaled_decoder[0].decoder_only, True),
              (dit_path, "data.annotation", os.path.basename(dit_config.data.annotation), "annotation.jsonl"),
              (dit_path, "data.null_text", dit_config.data.null_text, os.path.join(features, NULL_TEXT_FILE))]
    for (before, _), (config, path) in zip(vae_stages, vae_stages[1:]):
        wanted.append((path, "vae", config.vae, os.path.join(before.output_dir, "model")))
    for path, field, value, expected in wanted:
        if value != expected:
            raise UserError(f"{os.path.relpath(path, ROOT)}: {field} is {value!r}; the build needs {expected!r}")


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

    vae_stages = [stage_config(name) for name in VAE_STAGES]
    rescaled_stage, dit_stage = stage_config(RESCALED_VAE_STAGE), stage_config(DIT_STAGE)
    check_stages(vae_stages, rescaled_stage, dit_stage)
    (images, _), (vae, _), (rescaled_decoder, _), (dit, _) = vae_stages[0], vae_stages[-1], rescaled_stage, dit_stage
    data, init = os.path.dirname(images.data.annotation), dit.snapshot
    work = os.path.dirname(dit.output_dir)
    staged, latents = os.path.join(work, "snapshot_vae"), os.path.join(work, "latents")
    if not os.path.isfile(images.data.annotation):
        print(f"writing {args.clips} clips to {data}", flush=True)
        write_shapes_dataset(data, args.clips, seed=0, frames=FRAMES, size=SIZE, progress=tqdm)
    if not os.path.isdir(init):
        with atomic_directory(init) as tmp:
            write_text_stack(tmp, vocabulary(), seed=0)
            write_json(os.path.join(tmp, VAE_FOLDER, "config.json"), VAE_CONFIG)
            write_json(os.path.join(tmp, dit_variant, "config.json"), DIT_CONFIG)

    for _, path in vae_stages:
        run("train.py", "--config", path)
    rescaled = rescaled_decoder.vae
    if not os.path.isdir(rescaled):
        with atomic_directory(rescaled) as tmp:
            shutil.copytree(os.path.join(vae.output_dir, "model"), tmp, dirs_exist_ok=True)
            records = read_annotations(images.data.annotation)[:LATENT_STATISTICS_CLIPS]
            clips = np.stack([read_frames(record["video"], FRAMES) for record in records])
            a, b = standardize_vae_folder(tmp, clips, family.name)
            print(f"VAE latents rescaled by {a:.3f} and shifted per channel by {np.round(b, 2).tolist()}", flush=True)
    run("train.py", "--config", rescaled_stage[1])
    with atomic_directory(staged, overwrite=True) as tmp:  # text stack + trained VAE, for the extraction tools
        for name in text_folder_names(family):
            shutil.copytree(os.path.join(init, name), os.path.join(tmp, name))
        shutil.copytree(os.path.join(rescaled_decoder.output_dir, "model"), os.path.join(tmp, VAE_FOLDER))
    run("tools/extract_video_latents.py", "--snapshot", staged, "--annotation", images.data.annotation,
        "--output-dir", latents, "--resolutions", f"{SIZE}x{SIZE}", "--num-frames", str(FRAMES),
        "--dtype", "float32", "--save-dtype", "float32")
    run("tools/extract_text_features.py", "--snapshot", staged, "--annotation",
        os.path.join(latents, "annotation.jsonl"), "--output-dir", os.path.dirname(dit.data.annotation),
        "--dtype", "float32", "--save-dtype", "float32")
    run("train.py", "--config", dit_stage[1])

    with atomic_directory(args.output, overwrite=True) as tmp:
        shutil.copytree(staged, tmp, dirs_exist_ok=True)
        shutil.copytree(os.path.join(dit.output_dir, "model"), os.path.join(tmp, dit_variant))
        write_json(os.path.join(tmp, dit_variant, SAMPLING_FILE), SAMPLING)
    print(f"demo snapshot -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
