"""Proof of fit: per-device memory of the release DiTs' programs, from XLA's compile-time memory analysis.

    python bench/fit.py                                     # every row (release size: minutes per compile)
    python bench/fit.py --models miniflux --res 768p --programs dit,video --targets cpu
    python bench/fit.py --programs train --targets v5p-8,v5p-64
    python bench/fit.py --tiny                              # a tiny DiT at tiny shapes, seconds per row

Random weights and inputs exist only as shapes (`nnx.eval_shape`, `jax.ShapeDtypeStruct`); each program is lowered
on a mesh of the target's devices and compiled: for the CPU (8 fake host devices), or ahead of time for TPU
topologies without a TPU (`jax.experimental.topologies`, libtpu from the `[tpu]` extra; rows are skipped without it).

Programs (bf16, CFG batch 2, the last AR unit of a 384p temp-16 or 768p temp-31 video):
  dit       one DiT call (stage 2 of the last unit) on one device (for a TPU topology: its first chip)
  dit-mesh  the same on 8 devices, mesh fsdp=2 (the CFG rows), sequence=4 (the tokens)
  train     the AR train step of configs/train/miniflux_<res>_ar.py (per-device micro-batch, grad_accum, remat,
            scan_layers) at the video's length and the unit allocation with the most tokens (the bucketed program
            the training loop runs for it, `loop.bucket_units`), fsdp over all devices
  video     the peak of a whole generation on one device: the DiT resident, text encoders released; the larger of
            the largest DiT call and the tiled, streamed VAE decode (the pipeline's save_memory: 256-pixel tiles, one
            latent frame per chunk) with its decoded tiles and the stitched float32 video
Columns: `args` and `temp` are XLA's per-device argument and temporary bytes, `peak` = args + outputs - aliased +
temp, `GFLOP` the model FLOPs per device (analytic, `dit_training/flops.py`), `compile` the seconds to lower and
compile. GB = 1e9 bytes. XLA's CPU backend computes bf16 matmuls in float32, so a CPU row's temp also holds float32
copies of the weights it multiplies (about 0.7 GB per miniFLUX joint + single block pair); TPU rows have none.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import re
import sys
import time
import traceback

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # deviceless compiles hold no TPU: runs may overlap

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_models import bench_config  # noqa: E402
from dit_forward import sampler_call  # noqa: E402
from vae_decode_memory import decode_tiles  # noqa: E402
from pyramid_jax.dit.apply import dit_forward  # noqa: E402
from pyramid_jax.dit.load import abstract_dit  # noqa: E402
from pyramid_jax.dit_training.flops import dit_forward_flops  # noqa: E402
from pyramid_jax.dit_training.plan import step_cost  # noqa: E402
from pyramid_jax.dit_training.train_step import Batch, make_train_step  # noqa: E402
from pyramid_jax.dit_training.units import PaddedUnits, stage_units  # noqa: E402
from pyramid_jax.layers.attention import available_backends  # noqa: E402
from pyramid_jax.parallel.compiled import PlacedModel  # noqa: E402
from pyramid_jax.parallel.mesh import make_mesh  # noqa: E402
from pyramid_jax.parallel.rules import batch_sharding, state_shardings  # noqa: E402
from pyramid_jax.sampling import TextConditioning  # noqa: E402
from pyramid_jax.training.config import load_train_config  # noqa: E402
from pyramid_jax.training.optimizer import gradient_transform  # noqa: E402
from pyramid_jax.training.train_state import init_train_state, split_for_training, train_state_shardings  # noqa: E402
from pyramid_jax.vae.config import VAEConfig  # noqa: E402
from pyramid_jax.vae.load import abstract_vae  # noqa: E402
from pyramid_jax.vae.model import decode_program  # noqa: E402

MODELS = {"miniflux": "miniflux", "sd3": "sd3"}  # name -> configs/<name>_<res>.py


@dataclasses.dataclass(frozen=True)
class VideoShape:
    """A video's full-resolution latent grid and its length in latent frames (AR units)."""

    height: int
    width: int
    temp: int


RESOLUTIONS = {"384p": VideoShape(48, 80, 16), "768p": VideoShape(96, 160, 31)}
TINY_RESOLUTIONS = {"384p": VideoShape(8, 16, 4), "768p": VideoShape(16, 32, 4)}
# Deviceless TPU topologies: name -> (topology, get_topology_desc options). A v5p device is one chip (95 GB).
TOPOLOGIES = {"v5e-1": ("v5e:1x1", dict(chips_per_host_bounds=(1, 1, 1))), "v5p-8": ("v5p:2x2x1", {}),
              "v5p-16": ("v5p:2x2x2", {}), "v5p-64": ("v5p:4x4x2", {})}
PROGRAMS = {"dit": ("cpu", "v5e-1", "v5p-8"), "dit-mesh": ("cpu", "v5p-16"), "train": ("v5p-8", "v5p-64"),
            "video": ("cpu", "v5e-1")}  # program -> the targets it is compiled for by default
MESH_AXES = {"dit-mesh": dict(fsdp=2, sequence=4)}
TRAIN_RECIPES = {res: os.path.join(ROOT, "configs", "train", f"miniflux_{res}_ar.py") for res in ("384p", "768p")}
RECIPE_DEVICES = 8  # the reference recipe's GPUs: its global batch is split over them
VAE_TILE, VAE_WINDOW = 256, 1  # the pipeline's save_memory decode
RELEASE_VAE = VAEConfig(encoder_out_channels=16, decoder_in_channels=16)
TINY_VAE = RELEASE_VAE.replace(decoder_block_out_channels=(8,) * 4, decoder_layers_per_block=(1,) * 4,
                               decoder_norm_num_groups=4)
TEXT_LEN = 128
GB, MB = 1e9, 1e6
# (program, res) -> (Row field, limit in bytes): the goals of issue 17.
GOALS = {("dit", "768p"): ("temp", 8e9), ("video", "768p"): ("peak", 24e9), ("train", "768p"): ("peak", 95e9)}


@dataclasses.dataclass
class Row:
    model: str
    res: str
    program: str
    target: str
    backend: str
    devices: int = 0
    tokens: int = 0
    args: float = 0.0  # bytes per device
    temp: float = 0.0
    peak: float = 0.0
    gflop: float = 0.0
    compile_s: float = 0.0
    decode: float = 0.0  # video: the decode phase's peak bytes, DiT weights included
    note: str = ""


def tpu_available() -> bool:
    return importlib.util.find_spec("libtpu") is not None


def target_devices(target: str, count: int | None = None) -> list:
    """`count` host CPU devices (default 1), or every device of a deviceless TPU topology."""
    if target == "cpu":
        devices = jax.devices("cpu")
        if len(devices) < (count or 1):
            raise RuntimeError(f"{count} CPU devices needed, {len(devices)} exist: set XLA_FLAGS="
                               f"--xla_force_host_platform_device_count={count} before jax is imported")
        return devices[:count or 1]
    from jax.experimental import topologies

    name, options = TOPOLOGIES[target]
    return list(topologies.get_topology_desc(topology_name=name, platform="tpu", **options).devices)


def on(tree, shardings):
    """Abstract arrays of `tree` (nnx Variables included) carrying `shardings`, the input layout `jit.lower` takes."""

    def place(x, sharding):
        if isinstance(x, nnx.Variable):
            return x.replace(place(x.get_value(), sharding))
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree.map(place, tree, shardings, is_leaf=lambda x: isinstance(x, nnx.Variable))


def batch_on(tree, mesh):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=batch_sharding(mesh, x.shape)),
                        tree)


def compiled_memory(lowered) -> tuple[dict, float]:
    """Compiles `lowered`: per-device byte counts of XLA's memory analysis and the compile seconds."""
    start = time.perf_counter()
    compiled = lowered.compile()
    seconds = time.perf_counter() - start
    m = compiled.memory_analysis()
    args, temp = m.argument_size_in_bytes, m.temp_size_in_bytes
    peak = args + m.output_size_in_bytes - m.alias_size_in_bytes + temp
    return dict(args=args, temp=temp, peak=peak), seconds


def dit_call(config, shape: VideoShape, mesh) -> tuple[dict, float, int, int]:
    """One CFG DiT call at the last unit's full-resolution stage on `mesh`: memory, compile s, tokens, FLOPs."""
    graphdef, state = abstract_dit(config, jnp.bfloat16)
    inputs = jax.eval_shape(lambda k: sampler_call(config, shape.height, shape.width, shape.temp - 1,
                                                   jnp.bfloat16, k), jax.random.key(0))

    start = time.perf_counter()
    lowered = dit_forward.lower(PlacedModel.from_split(graphdef, on(state, state_shardings(state, mesh)), mesh),
                                *batch_on(inputs, mesh))
    memory, seconds = compiled_memory(lowered)
    clips = [[c.shape for c in inputs[0][0]]]
    tokens = sum(s[1] * s[2] * s[3] // 4 for s in clips[0]) + TEXT_LEN
    return memory, time.perf_counter() - start, tokens, dit_forward_flops(config, clips, TEXT_LEN)


def train_step(config, shape: VideoShape, mesh, recipe, per_device: int) -> tuple[dict, float, int, int]:
    """The AR train step (fp32 master weights, bf16 compute, AdamW, EMA) of `recipe` (a `TrainConfig`) at the
    allocation with the most tokens, `per_device` samples per device in each micro-batch."""
    grad_accum = recipe.step.grad_accum
    config = config.replace(remat_policy=recipe.remat_policy, scan_layers=recipe.scan_layers)
    graphdef, abstract = abstract_dit(config, jnp.float32)
    graphdef, params, buffers = split_for_training(nnx.merge(graphdef, abstract), jnp.bfloat16)
    step_config = dataclasses.replace(recipe.step, grad_accum=grad_accum)
    tx = gradient_transform(step_config.optimizer)
    state = jax.eval_shape(lambda p, b: init_train_state(p, b, tx), params, buffers)
    shardings = train_state_shardings(state, mesh)

    n = per_device * grad_accum * mesh.devices.size
    latents = (n, shape.temp, shape.height, shape.width, config.latent_channels)
    units, cost = busiest_units(step_config.objective, (n // grad_accum,) + latents[1:], config)
    batch = Batch(jax.ShapeDtypeStruct(latents, jnp.float32),
                  TextConditioning(jax.ShapeDtypeStruct((n, TEXT_LEN, config.joint_attention_dim), jnp.float32),
                                   jax.ShapeDtypeStruct((n, TEXT_LEN), jnp.int32),
                                   jax.ShapeDtypeStruct((n, config.pooled_projection_dim), jnp.float32)))
    replicated = NamedSharding(mesh, PartitionSpec())
    # the training loop's bucketed step: the allocation's bucket program, its unit counts a runtime input
    padded = PaddedUnits.bucketed(units, shape.temp)
    batch = batch_on(batch, mesh).replace(padded_units=padded.replace(
        counts=jax.ShapeDtypeStruct(padded.counts.shape, padded.counts.dtype, sharding=replicated)))
    key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=replicated)
    step = make_train_step(graphdef, step_config, state_shardings=shardings)
    start = time.perf_counter()
    memory, _ = compiled_memory(step.lower(on(state, shardings), batch, key))
    tokens = cost.tokens // (n // grad_accum) * per_device  # image tokens per device per micro-batch
    return memory, time.perf_counter() - start, tokens, cost.flops * grad_accum


def busiest_units(objective, latents: tuple[int, ...], config):
    """The AR unit allocation (`stage_units` over every step counter) with the most DiT tokens, and its cost."""
    temp = latents[1]
    costs = {units: step_cost(objective, latents, TEXT_LEN, units, config)
             for units in {stage_units(c, temp) for c in range(temp)}}
    units = max(costs, key=lambda u: costs[u].tokens)
    return units, costs[units]


def tiny_overrides(model: str) -> dict:
    """DiT config fields of a tiny `model` (1 + 1 blocks, 2 heads of 64, small text): compiles in seconds."""
    tiny = dict(num_layers=1, num_attention_heads=2, joint_attention_dim=64, pooled_projection_dim=32)
    return {**tiny, **(dict(num_single_layers=1) if model == "miniflux" else dict(caption_projection_dim=128))}


def vae_decode(config: VAEConfig, shape: VideoShape, mesh, tile: int = VAE_TILE,
               window: int = VAE_WINDOW) -> tuple[dict, float]:
    """The tiled, streamed decode of a whole video on one device: weights + the largest tile's program + the
    decoded tiles held for stitching + the stitched float32 video (bytes), and the compile seconds."""
    graphdef, state = abstract_vae(config, jnp.bfloat16)
    f = config.downsample_scale
    tiles = decode_tiles(shape.height, shape.width, tile, f)
    frames = 1 + (shape.temp - 1) * f  # the VAE compresses time and space by the same factor
    pixel_bytes = f * f * frames * 3 * 4  # one latent position decoded: f x f pixels x frames x RGB float32
    held = 0 if len(tiles) == 1 else sum(h * w for h, w in tiles) * pixel_bytes
    video = shape.height * shape.width * pixel_bytes
    start = time.perf_counter()
    worst = {}
    for h, w in set(tiles):
        z = jax.ShapeDtypeStruct((1, shape.temp, h, w, config.latent_channels), jnp.float32)
        vae = PlacedModel.from_split(graphdef, on(state, state_shardings(state, mesh)), mesh)
        lowered = decode_program.lower(vae, batch_on(z, mesh), is_init_image=True, temporal_chunk=True,
                                       window_size=window)
        memory, _ = compiled_memory(lowered)
        worst = max(worst, memory, key=lambda m: m.get("peak", 0))
    return dict(args=worst["args"], temp=worst["temp"], peak=worst["peak"] + held + video), \
        time.perf_counter() - start


def measure(model: str, res: str, program: str, target: str, backend: str, tiny: bool = False,
            cache: dict | None = None) -> Row:
    """One row: `program` of `model` at `res` compiled for `target` with attention `backend`."""
    cache = {} if cache is None else cache
    row = Row(model, res, program, target, backend)
    overrides = tiny_overrides(model) if tiny else {}
    config = bench_config(f"{MODELS[model]}_{res}", attention_backend=backend, **overrides)
    shape = (TINY_RESOLUTIONS if tiny else RESOLUTIONS)[res]
    if program == "train":
        recipe = load_train_config(TRAIN_RECIPES[res])
        devices = target_devices(target, RECIPE_DEVICES)
        mesh = make_mesh(data=1, fsdp=-1, devices=devices)
        memory, seconds, row.tokens, flops = train_step(
            config, shape, mesh, recipe, recipe.data.batch_size // RECIPE_DEVICES // recipe.step.grad_accum)
        row.note = f"fsdp={len(devices)}, remat {recipe.remat_policy}"
    else:
        count = 8 if program == "dit-mesh" else 1
        devices = target_devices(target, count)[:count]
        mesh = make_mesh(**MESH_AXES.get(program, {}), devices=devices) if count > 1 else \
            make_mesh(devices=devices)
        key = (model, res, target, backend, count, tiny)
        if key not in cache:
            cache[key] = dit_call(config, shape, mesh)
        memory, seconds, row.tokens, flops = cache[key]
        if program == "video":
            if ("decode", res, target, tiny) not in cache:  # the same for every backend
                cache["decode", res, target, tiny] = vae_decode(TINY_VAE if tiny else RELEASE_VAE, shape, mesh)
            decode, seconds = cache["decode", res, target, tiny]
            params = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(abstract_dit(config, jnp.bfloat16)[1]))
            memory = dict(args=memory["args"], temp=max(memory["temp"], decode["temp"]),
                          peak=max(memory["peak"], params + decode["peak"]))
            row.decode = params + decode["peak"]
            flops = 0
        elif program == "dit-mesh":
            row.note = ",".join(f"{k}={v}" for k, v in MESH_AXES[program].items())
    row.devices = len(devices)
    row.args, row.temp, row.peak = memory["args"], memory["temp"], memory["peak"]
    row.gflop, row.compile_s = flops / 1e9 / row.devices, seconds
    return row


def target_backends(target: str) -> list[str]:
    """The attention backends for the target's platform, `auto` left out (it picks one of them)."""
    return [b for b in available_backends("cpu" if target == "cpu" else "tpu") if b != "auto"]


def goal(row: Row, tiny: bool) -> str:
    """Whether a release row meets its issue-17 goal (see GOALS)."""
    if tiny or (row.program, row.res) not in GOALS:
        return ""
    field, limit = GOALS[row.program, row.res]
    return f"{field} < {limit / GB:.0f} GB: {'yes' if getattr(row, field) < limit else 'NO'}"


def print_row(row: Row, tiny: bool) -> None:
    unit = MB if tiny else GB
    note = ", ".join(filter(None, [row.note, f"decode {row.decode / unit:.2f}" if row.decode else "",
                                   goal(row, tiny)]))
    print(f"| {row.model} | {row.res} | {row.program} | {row.target} | {row.devices} | {row.backend} | "
          f"{row.tokens:,} | {row.args / unit:.2f} | {row.temp / unit:.2f} | {row.peak / unit:.2f} | "
          f"{row.gflop:,.1f} | {row.compile_s:.0f} | {note} |", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="miniflux,sd3", help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--res", default="384p,768p", help=f"comma-separated subset of {','.join(RESOLUTIONS)}")
    parser.add_argument("--programs", default=",".join(PROGRAMS), help=f"subset of {','.join(PROGRAMS)}")
    parser.add_argument("--targets", default=None, help="cpu and/or TPU topologies "
                        f"({','.join(TOPOLOGIES)}); default: each program's own ({PROGRAMS})")
    parser.add_argument("--backends", default=None, help="attention backends (default: each target's own)")
    parser.add_argument("--tiny", action="store_true", help="a tiny DiT at tiny shapes (smoke run)")
    args = parser.parse_args(argv)

    unit = "MB" if args.tiny else "GB"
    print(f"| model | res | program | target | devices | attention | tokens | args {unit} | temp {unit} | "
          f"peak {unit} | GFLOP | compile s | note |\n|" + "---|" * 13)
    cache: dict = {}
    failed = 0
    for model in args.models.split(","):
        for res in args.res.split(","):
            for program in args.programs.split(","):
                targets = args.targets.split(",") if args.targets else PROGRAMS[program]
                for target in targets:
                    if target != "cpu" and not tpu_available():
                        print(f"| {model} | {res} | {program} | {target} | skipped: libtpu not installed "
                              "(pip install -e '.[tpu]') |")
                        continue
                    for backend in args.backends.split(",") if args.backends else target_backends(target):
                        try:
                            print_row(measure(model, res, program, target, backend, args.tiny, cache), args.tiny)
                        except Exception as e:  # a backend a platform cannot compile is a row, not the end
                            too_big = re.search(r"HLO temporaries \(([\d.]+)G\) exceeds available HBM \(([\d.]+)G",
                                                str(e))
                            if too_big:  # XLA's TPU compiler refuses a program that cannot fit the chip
                                print(f"| {model} | {res} | {program} | {target} | | {backend} | | | "
                                      f"{too_big[1]} GiB | | | | does not fit: {too_big[2]} GiB of HBM |", flush=True)
                                continue
                            failed += 1
                            traceback.print_exc()
                            print(f"| {model} | {res} | {program} | {target} | {backend} | failed: "
                                  f"{type(e).__name__}: {str(e).splitlines()[0][:200]} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
