"""Generate videos (or images) with Pyramid Flow: text-to-video, image-to-video with --image, or extend a clip.

    python sample.py                                   # the default snapshot (see below)
    python sample.py --snapshot rain1011/pyramid-flow-miniflux --prompt "a red fox in the snow" --output fox.mp4
    python sample.py --snapshot tests/fixtures/snapshots/miniflux_tiny --dit out/train_tiny/model
    python sample.py --snapshot pyramid-flow-miniflux --image cat.png --prompt "the cat turns its head" --temp 16
    python sample.py --snapshot pyramid-flow-miniflux --variant diffusion_transformer_image --temp 1 \\
        --width 1280 --height 768 --guidance-scale 9 --steps 20,20,20 --output fox.png
    python sample.py --snapshot pyramid-flow-miniflux --extend fox.mp4 --temp 8 --prompt "the fox runs on"

Defaults follow the reference's app: the variant's native size, temp 16 (at most the variant's limit), steps
20,20,20 for the first frame and 10,10,10 for later ones (i2v: 10,10,10 throughout), guidance 7 / video guidance 5
(i2v: 4); a DiT folder's own sampling.json (as the embedded snapshots have) sets its native size, max temp and
defaults instead. Without --snapshot: the moving-shapes demo committed in checkpoints/shapes_demo (trained on CPU
from scratch by tools/build_shapes_demo.py with our train.py; 64x64 videos of 9 frames, prompts such as "one blue
square slides left" in its 26-word vocabulary). --snapshot also takes a hub id such as rain1011/pyramid-flow-miniflux
(downloaded into huggingface_hub's cache, or read from it offline). --dit swaps in a trained DiT folder, e.g.
`train.py`'s `<output_dir>/model`. Several --prompt flags are generated as one batch; each video is written to its
own file (`name_0.mp4`, `name_1.mp4`, ...).

Long videos: --extend continues a clip (a video file of 1 + 8k frames at a size the variant takes, or latents saved
with --save-latents) by --temp latent frames, with --video-steps and --video-guidance-scale, and writes the whole
video. Past --window latent frames (default: the variant's trained maximum) each frame sees only the latest ones,
so time and memory per frame stay flat. The latents are written after every frame (to --save-latents, else to
`<output>.partial.npy`, removed at the end): after Ctrl-C or a kill, `--extend` that file with the same prompt and
seed to continue; continuing a text-to-video run this way gives the same video as an uninterrupted run.

Devices: the run is sharded over all local devices. By default the guidance batch (2 rows per prompt) is split over
the `data` axis as far as it divides, and the remaining devices form `fsdp`, which shards the weights (e.g. 8 GPUs,
one prompt: data=2, fsdp=4). --mesh data=2,fsdp=2,tensor=2 picks the axes (unnamed ones are 1, one may be -1).

Compilation cache: compiled programs are saved on disk (default ~/.cache/pyramid_jax/xla, or
$JAX_COMPILATION_CACHE_DIR), so a second run of the same sizes loads them instead of compiling (the sampler compiles
one program per unit bucket). --compile-cache DIR moves it; --no-compile-cache turns it off.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO_SNAPSHOT = os.path.join(HERE, "checkpoints", "shapes_demo")
TINY_SNAPSHOT = os.path.join(HERE, "tests", "fixtures", "snapshots", "miniflux_tiny")
DEFAULT_PROMPT = "A red fox jumping over a frozen river at sunset, snow falls gently"


def step_list(text: str) -> list[int]:
    try:
        steps = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 20,20,20, got {text!r}") from None
    return steps[0] if len(steps) == 1 else steps


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--snapshot", help="snapshot folder (released torch layout or converted); default: see below")
    p.add_argument("--variant", default="diffusion_transformer_384p", help="DiT folder of the snapshot")
    p.add_argument("--dit", metavar="FOLDER", help="a DiT folder used instead of the snapshot's --variant, e.g. a "
                   "train.py run's <output_dir>/model (the rest of the snapshot is used as is)")
    p.add_argument("--prompt", action="append", help="prompt; repeat the flag for a batch of prompts")
    p.add_argument("--negative-prompt", default=None, help="default: the reference's negative prompt")
    p.add_argument("--image", help="input image for image-to-video (resized and center-cropped to the size)")
    p.add_argument("--width", type=int, help="pixels, a multiple of 64 (default: the variant's native width)")
    p.add_argument("--height", type=int, help="pixels, a multiple of 64 (default: the variant's native height)")
    p.add_argument("--temp", type=int, help="latent frames: 8 (temp - 1) + 1 video frames; 1 = an image")
    p.add_argument("--steps", type=step_list, help="Euler steps per stage for the first frame (i2v: every frame)")
    p.add_argument("--video-steps", type=step_list, help="Euler steps per stage for later frames (t2v)")
    p.add_argument("--guidance-scale", type=float, help="first frame (default: the snapshot's sampling.json, else 7); "
                   "<= 0 turns guidance off")
    p.add_argument("--video-guidance-scale", type=float,
                   help="later frames (default: the snapshot's sampling.json, else 5, i2v 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lora", action="append", default=[], metavar="PATH[:SCALE]",
                   help="a LoRA folder (train.py ... lora.rank=r writes <output_dir>/lora) added to the DiT with "
                        "SCALE (default 1); repeat the flag to apply several")
    p.add_argument("--output", default=os.path.join(HERE, "out", "sample.mp4"),
                   help=".mp4 (24 fps), .gif, .png (an image; a video as its frame strip), or a folder of PNG frames")
    p.add_argument("--save-latents", help="also write the latents [B, T, h, w, C] to this .npy file (after every "
                   "frame, so an interrupted run keeps the frames it finished)")
    p.add_argument("--extend", metavar="CLIP", help="continue this video file or --save-latents .npy by --temp "
                   "latent frames (the output is the whole video)")
    p.add_argument("--trim", action="store_true", help="with --extend: drop the clip's first frames to 1 + 8k")
    p.add_argument("--window", type=int, help="latent frames each unit sees, itself included (default: the "
                   "variant's max temp); longer videos condition on the latest ones")
    p.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto", help="auto: bf16 on GPU/TPU, else fp32")
    p.add_argument("--save-memory", action="store_true",
                   help="one model resident at a time; VAE decodes 1 latent frame at a time with 256-pixel tiles")
    p.add_argument("--attention-backend", help="auto (default), xla, blockwise, ...: see layers/attention.py")
    p.add_argument("--mesh", help="device mesh axes such as data=2,fsdp=4 (default: see Devices below)")
    from pyramid_jax.compile_cache import add_compile_cache_flags

    add_compile_cache_flags(p)
    p.add_argument("--strict-vocab", action="store_true",
                   help="a snapshot with word-level tokenizers (the demo) refuses prompt words outside its vocabulary "
                        "(default: a warning naming them)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="read pickled .bin weights (the released snapshot's VAE; tensors only, no code is run)")
    from pyramid_jax.errors import add_debug_flag

    add_debug_flag(p)
    return p.parse_args(argv)


def fill_defaults(args) -> None:
    """The embedded snapshots' defaults, else the reference app's; checks files before any model loads."""
    if args.snapshot is None:
        args.snapshot = DEMO_SNAPSHOT
    from pyramid_jax.snapshot import resolve_snapshot, sampling_defaults

    args.snapshot = resolve_snapshot(args.snapshot)  # a folder, or a hub id through huggingface_hub's cache
    if args.image is not None and not os.path.isfile(args.image):
        what = "is a folder, not an image file" if os.path.isdir(args.image) else "does not exist"
        sys.exit(f"error: input image {args.image} {what}")
    if args.extend is not None and not os.path.isfile(args.extend):
        sys.exit(f"error: --extend clip {args.extend} does not exist")
    if args.extend is not None and args.image is not None:
        sys.exit("error: give --image (image-to-video) or --extend (continue a clip), not both")
    check_arguments(args)
    if args.dit is not None and not os.path.isdir(args.dit):
        raise FileNotFoundError(f"--dit folder {args.dit} does not exist")
    # The DiT folder's own sampling.json (the embedded snapshots have one), else the snapshot variant's.
    folders = [*([args.dit] if args.dit else []), os.path.join(args.snapshot, args.variant)]
    for name, value in next((d for d in map(sampling_defaults, folders) if d), {}).items():
        if name != "max_temp" and getattr(args, name) is None:  # max_temp: the pipeline's preset
            setattr(args, name, value)
    if args.guidance_scale is None:
        args.guidance_scale = 7.0
    i2v = args.image is not None
    if args.steps is None:  # 0 is an error (the pipeline's check), not "the default"
        args.steps = [10] * 3 if i2v else [20] * 3
    if args.video_steps is None:
        args.video_steps = [10] * 3
    if args.video_guidance_scale is None:
        args.video_guidance_scale = 4.0 if i2v else 5.0
    args.prompt = args.prompt or [DEFAULT_PROMPT]


def check_vocabulary(args) -> None:
    """A word-level tokenizer (the demo's) spells an unknown word as characters the model never learnt: warn, naming
    the words (an error with --strict-vocab). Subword tokenizers (the released snapshots) have no such list."""
    from pyramid_jax.demo.text_stack import unknown_words, word_vocabulary
    from pyramid_jax.errors import ArgumentError

    vocabulary = word_vocabulary(args.snapshot)
    texts = [*args.prompt, *([args.negative_prompt] if args.negative_prompt else [])]
    unknown = [] if vocabulary is None else list(dict.fromkeys(w for t in texts for w in unknown_words(t, vocabulary)))
    if not unknown:
        return
    message = (f"{', '.join(repr(w) for w in unknown)} not in the vocabulary of {args.snapshot} (its word-level "
               f"tokenizers know only: {' '.join(vocabulary)})")
    if args.strict_vocab:
        raise ArgumentError(f"--prompt: {message}")
    print(f"warning: {message}; --strict-vocab makes this an error", file=sys.stderr)


def check_arguments(args) -> None:
    """Output paths, seed and guidance scales, before anything is imported or loaded."""
    from pyramid_jax import validation
    from pyramid_jax.io import atomic
    from pyramid_jax.io.video import check_output_path

    check_output_path(args.output, "--output")
    if args.save_latents is not None:
        if not args.save_latents.endswith(".npy"):
            raise validation.ArgumentError(f"--save-latents {args.save_latents!r} must end with .npy")
        atomic.check_writable(args.save_latents, "--save-latents")
    validation.seed(args.seed, "--seed")
    for name in ("guidance_scale", "video_guidance_scale"):
        if getattr(args, name) is not None:
            validation.real(getattr(args, name), "--" + name.replace("_", "-"))


def default_mesh_axes(rows: int, devices: int) -> dict[str, int]:
    """The guidance batch over `data` as far as it divides the devices, the rest on `fsdp` (weights sharded)."""
    data = math.gcd(rows, devices)
    return dict(data=data, fsdp=devices // data)


def load_image(path: str, width: int, height: int):
    """Aspect-preserving resize to cover width x height, then a center crop (as the reference's app)."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    scale = max(width / image.width, height / image.height)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def progress_path(args) -> str:
    """Where the latents go after every unit: --save-latents, else `<output>.partial.npy`."""
    return args.save_latents or os.path.splitext(args.output)[0] + ".partial.npy"


def output_paths(path: str, count: int) -> list[str]:
    if count == 1:
        return [path]
    stem, suffix = os.path.splitext(path)
    return [f"{stem}_{i}{suffix}" for i in range(count)]


def main(argv=None) -> int:
    from pyramid_jax.errors import run_cli

    return run_cli(run, argv)


def run(argv) -> int:
    args = parse_args(argv)
    fill_defaults(args)
    check_vocabulary(args)

    import jax
    import jax.numpy as jnp
    import numpy as np
    from tqdm import tqdm

    from pyramid_jax.compile_cache import setup_compile_cache
    from pyramid_jax.io.atomic import atomic_file
    from pyramid_jax.clip_input import save_latents
    from pyramid_jax.io.video import save_frames
    from pyramid_jax.lora.files import parse_lora_arg
    from pyramid_jax.parallel.mesh import make_mesh, parse_mesh_axes
    from pyramid_jax.pipeline import DEFAULT_NEGATIVE_PROMPT, PyramidFlowPipeline

    setup_compile_cache(args, tqdm.write)
    dtype = {"fp32": jnp.float32, "bf16": jnp.bfloat16}.get(args.dtype)
    if dtype is None:
        dtype = jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16
    rows = len(args.prompt) * (2 if args.guidance_scale > 0 else 1)
    axes = parse_mesh_axes(args.mesh) if args.mesh else default_mesh_axes(rows, jax.device_count())
    mesh = make_mesh(**axes)
    pipe = PyramidFlowPipeline.from_pretrained(args.snapshot, args.variant, dtype, mesh, save_memory=args.save_memory,
                                               allow_pickle=args.allow_pickle,
                                               lora=[parse_lora_arg(x) for x in args.lora], dit=args.dit,
                                               attention_backend=args.attention_backend)
    if args.temp is None:
        args.temp = min(16, pipe.preset.max_temp) if pipe.preset is not None else 16
    if args.width is None or args.height is None:
        if pipe.preset is None:
            sys.exit(f"error: give --width and --height ({args.variant} has no native size)")
        args.width, args.height = args.width or pipe.preset.width, args.height or pipe.preset.height

    bars = []  # created at the first unit, after the arguments passed the pipeline's checks
    done = dict(saved=0, total=None)  # latent frames on disk, and in the whole video

    def progress(unit: int, total: int) -> None:
        done["total"] = total
        if not bars:
            bars.append(tqdm(total=total, desc="frames", unit="frame"))
        bars[0].update(unit - bars[0].n)  # frames done before this unit

    partial = progress_path(args)

    def keep(latents) -> None:  # after every unit: an interruption keeps the units finished so far
        save_latents(partial, np.asarray(latents, np.float32))
        done["saved"] = latents.shape[1]

    common = dict(temp=args.temp, negative_prompt=DEFAULT_NEGATIVE_PROMPT if args.negative_prompt is None
                  else args.negative_prompt, seed=args.seed, window=args.window, output_type="latent",
                  callback=progress, on_unit=keep)
    guidance = dict(guidance_scale=args.guidance_scale, video_guidance_scale=args.video_guidance_scale)
    start = time.perf_counter()
    try:
        if args.extend is not None:
            latents = pipe.extend(args.prompt, args.extend, num_inference_steps=args.video_steps, trim=args.trim,
                                  guidance_scale=args.video_guidance_scale if args.guidance_scale > 0 else 0.0,
                                  **common)
        elif args.image is not None:
            image = load_image(args.image, args.width, args.height)
            latents = pipe.generate_i2v(args.prompt, image, num_inference_steps=args.steps, **guidance, **common)
        else:
            latents = pipe.generate(args.prompt, args.height, args.width, num_inference_steps=args.steps,
                                    video_num_inference_steps=args.video_steps, **guidance, **common)
        latents = jax.block_until_ready(latents)
    except KeyboardInterrupt:
        kept = (f"the {done['saved']} latent frames finished so far are in {partial}; continue with --extend "
                f"{partial} --temp {done['total'] - done['saved']} and the same prompt and seed") if done["saved"] \
            else "no frame was finished"
        print(f"\ninterrupted: {kept}", file=sys.stderr)
        raise
    for bar in bars:
        bar.update(bar.total - bar.n)
        bar.close()
    sampled = time.perf_counter() - start
    if args.save_latents:
        with atomic_file(args.save_latents) as tmp:
            np.save(tmp, np.asarray(latents, np.float32))
        print(f"latents {tuple(latents.shape)} [B, T, h, w, C] -> {args.save_latents}")
    pieces = '1 latent frame, 256-pixel tiles' if args.save_memory else '2 latent frames, 512-pixel tiles'
    print(f"decoding {latents.shape[0]} video(s) of {latents.shape[1]} latent frames with the VAE ({pieces} at a time)",
          flush=True)
    decode_start = time.perf_counter()
    videos = pipe.decode_latent(latents, save_memory=args.save_memory)
    print(f"decoded in {time.perf_counter() - decode_start:.1f} s", flush=True)
    for video, path in zip(videos, output_paths(args.output, len(videos))):
        print(f"{video.shape[0]} frame(s) {video.shape[2]}x{video.shape[1]} -> {save_frames(video, path)}")
    if not args.save_latents and os.path.exists(partial):
        os.remove(partial)  # the videos are written
    mesh_text = ", ".join(f"{name}={size}" for name, size in mesh.shape.items() if size > 1) or "one device"
    print(f"sampled {len(videos)} video(s) of {latents.shape[1]} latent frames in {sampled:.1f} s "
          f"(decode {time.perf_counter() - start - sampled:.1f} s) on {jax.device_count()} "
          f"{jax.devices()[0].platform} device(s), mesh {mesh_text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
