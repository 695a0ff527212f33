"""Peak host memory and time of converting a release-size DiT (random weights, released key listing).

    python bench/convert_memory.py [--family miniflux|sd3] [--dtype fp32|bf16] [--workdir /tmp]

Writes a release-shaped `.safetensors` (streamed, never whole in memory), then runs `convert_torch_weights.py` in a
child process and reports its peak resident memory against the checkpoint size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LISTINGS = {"miniflux": "miniflux_dit.json", "sd3": "sd3_dit.json"}


def write_random_safetensors(path: str, shapes: list[tuple[str, list[int]]], seed: int = 0) -> int:
    """Streams a float32 safetensors file with uniform random tensors; returns its data size in bytes."""
    header, offset = {}, 0
    for key, shape in shapes:
        size = 4 * int(np.prod(shape))
        header[key] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little") + blob)
        for _, shape in shapes:
            f.write((rng.random(shape, dtype=np.float32) - 0.5).tobytes())
    return offset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(LISTINGS), default="miniflux")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    args = parser.parse_args()

    sys.path.insert(0, ROOT)
    from pyramid_jax.dit.families import get_family

    listing = json.load(open(os.path.join(ROOT, "tests", "fixtures", "release_shapes", LISTINGS[args.family])))
    work = tempfile.mkdtemp(prefix="convert_bench_", dir=args.workdir)
    try:
        src = os.path.join(work, "snapshot", "diffusion_transformer_384p")
        os.makedirs(src)
        with open(os.path.join(src, "config.json"), "w") as f:
            json.dump(get_family(args.family).released_config, f)
        shapes = [(k, s) for k, s, _, kind in listing["state_dict"]]
        start = time.perf_counter()
        nbytes = write_random_safetensors(os.path.join(src, "diffusion_pytorch_model.safetensors"), shapes)
        print(f"wrote {len(shapes)} tensors, {nbytes / 2**30:.2f} GiB in {time.perf_counter() - start:.1f} s")

        start = time.perf_counter()
        cmd = [sys.executable, os.path.join(ROOT, "convert_torch_weights.py"), "--src", os.path.dirname(src),
               "--dst", os.path.join(work, "out"), "--components", "dit", "--dtype", args.dtype]
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        out_bytes = nbytes // (2 if args.dtype == "bf16" else 1)
        print(f"family {args.family}, dtype {args.dtype}: converted in {seconds:.1f} s")
        print(f"peak RSS {peak / 2**30:.2f} GiB = {peak / nbytes:.2f}x the fp32 checkpoint "
              f"({peak / out_bytes:.2f}x the converted weights, {out_bytes / 2**30:.2f} GiB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
