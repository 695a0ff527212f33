"""Peak memory and time of VAE decoding, with and without streaming and tiling, as the clip grows.

Released architecture (16 latent channels, 128-512 wide), random weights. Every configuration runs in a fresh
process, so device peaks and compile caches do not mix. Defaults fit a small CPU; scale up with flags, e.g.

    python bench/vae_decode_memory.py --frames 1,17,33,65 --size 64 --tile 32 --window 1
    python bench/vae_decode_memory.py --frames 17,65,121 --size 384 --tile 256 --window 2 --dtype bf16   # GPU

Columns: `xla peak` is XLA's buffer plan of the largest compiled decode program (temporaries + input + output,
weights excluded); tiled runs also hold every decoded tile until they are stitched (`+ tiles`). `device peak` is
the accelerator allocator's peak bytes in use (weights included), where the platform reports it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

MODES = {  # name -> decode options besides the window and tile size
    "full": dict(temporal_chunk=False, tiled=False),
    "chunked": dict(temporal_chunk=True, tiled=False),
    "tiled": dict(temporal_chunk=False, tiled=True),
    "tiled+chunked": dict(temporal_chunk=True, tiled=True),
}


def random_weights(abstract):
    """N(0, 0.02) kernels, unit norm scales, zero biases; drawn with numpy, which is much faster than per-leaf jax."""
    import numpy as np
    from flax import nnx

    rng = np.random.default_rng(0)
    for path, var in nnx.to_flat_state(abstract):
        shape = var.get_value().shape
        if path[-1] == "kernel":
            yield path, rng.standard_normal(shape, np.float32) * np.float32(0.02)
        else:
            yield path, np.full(shape, 1.0 if path[-1] == "scale" else 0.0, np.float32)


def decode_tiles(height: int, width: int, tile: int, factor: int) -> list[tuple[int, int]]:
    """Latent (height, width) of every tile a tiled decode of a `height` x `width` latent frame runs on."""
    from pyramid_jax.vae.tiling import decode_grid

    grid = decode_grid(tile, factor)
    if max(height, width) <= grid.size:
        return [(height, width)]
    return [(min(grid.size, height - i), min(grid.size, width - j))
            for i in range(0, height, grid.step) for j in range(0, width, grid.step)]


def measure(frames: int, size: int, mode: str, window: int, tile: int, dtype: str, repeats: int) -> dict:
    """Decodes `[1, L, size/8, size/8, 16]` random latents (L = 1 + (frames-1)/8) and reports time and memory."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from pyramid_jax.io import weights
    from pyramid_jax.parallel.compiled import PlacedModel
    from pyramid_jax.vae.config import VAEConfig
    from pyramid_jax.vae.load import abstract_vae
    from pyramid_jax.vae.model import decode_program

    dtype = {"fp32": jnp.float32, "bf16": jnp.bfloat16}[dtype]
    config = VAEConfig(encoder_out_channels=16, decoder_in_channels=16)
    graphdef, abstract = abstract_vae(config, dtype)
    vae = weights.materialize(graphdef, abstract, random_weights(abstract))
    f, latent = config.downsample_scale, size // config.downsample_scale
    z = jax.random.normal(jax.random.key(1), (1, 1 + (frames - 1) // f, latent, latent, config.latent_channels))
    temporal_chunk, use_tiles = MODES[mode]["temporal_chunk"], MODES[mode]["tiled"]
    options = dict(temporal_chunk=temporal_chunk, window_size=window, tile_sample_min_size=tile if use_tiles else None)

    start = time.perf_counter()
    video = jax.block_until_ready(vae.decode(z, **options))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(vae.decode(z, **options))
        times.append(time.perf_counter() - start)
    run = float(np.median(times))

    # The latent shapes `decode_program` ran on (one per tile when tiling); their compiled programs are cached by now.
    tiles = decode_tiles(latent, latent, tile, f) if use_tiles else [(latent, latent)]
    pixel_bytes = f * f * video.shape[1] * video.shape[-1] * jnp.dtype(dtype).itemsize
    held = 0 if len(tiles) == 1 else sum(h * w for h, w in tiles) * pixel_bytes
    peak = 0
    for h, w in set(tiles):
        part = jnp.zeros(z.shape[:2] + (h, w, z.shape[-1]), z.dtype)
        stats = decode_program.lower(PlacedModel(vae), part, is_init_image=True, temporal_chunk=temporal_chunk,
                                     window_size=window if temporal_chunk else None).compile().memory_analysis()
        peak = max(peak, stats.temp_size_in_bytes + stats.output_size_in_bytes + part.nbytes)
    device = jax.devices()[0].memory_stats() or {}
    return dict(frames=int(video.shape[1]), size=size, mode=mode, compile_s=first - run, run_s=run, xla_peak=peak,
                held_tiles=held, device_peak=device.get("peak_bytes_in_use"), platform=jax.devices()[0].platform)


def _mib(n) -> str:
    return "-" if not n else f"{n / 2**20:,.1f} MiB"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="1,17,33", help="comma-separated pixel frame counts (1 + 8k)")
    parser.add_argument("--size", type=int, default=48, help="frame height = width in pixels (multiple of 8)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument("--window", type=int, default=1, help="latent frames per streamed chunk")
    parser.add_argument("--tile", type=int, default=32, help="tile_sample_min_size in pixels (multiple of 32)")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs after the compiling one")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one configuration, print JSON
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(**json.loads(args.one))))
        return 0

    print(f"decode, released VAE architecture, random {args.dtype} weights, {args.size}x{args.size} px, "
          f"window {args.window} latent(s), tile {args.tile} px")
    header = f"{'frames':>6}  {'mode':<14}{'compile':>9}{'run':>9}{'xla peak':>12}{'+ tiles':>11}{'device peak':>13}"
    print(header + "\n" + "-" * len(header))
    for frames in (int(t) for t in args.frames.split(",")):
        for mode in args.modes.split(","):
            job = dict(frames=frames, size=args.size, mode=mode, window=args.window, tile=args.tile,
                       dtype=args.dtype, repeats=args.repeats)
            out = subprocess.run([sys.executable, __file__, "--one", json.dumps(job)], capture_output=True, text=True)
            if out.returncode:
                print(f"{frames:>6}  {mode:<14}failed:\n{out.stderr[-2000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['frames']:>6}  {mode:<14}{r['compile_s']:>8.1f}s{r['run_s']:>8.2f}s{_mib(r['xla_peak']):>12}"
                  f"{_mib(r['held_tiles']):>11}{_mib(r['device_peak']):>13}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
