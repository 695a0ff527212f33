"""Add one or more LoRAs into a DiT's weights and write the result as a converted DiT folder.

    python tools/merge_lora.py --dit checkpoints/shapes_demo/diffusion_transformer_384p \
        --lora out/orange/lora --output out/merged_dit
    python tools/merge_lora.py --dit pyramid-flow-miniflux/diffusion_transformer_384p --lora a:0.8 --lora b:0.5 \
        --output merged/diffusion_transformer_384p

Every LoRA is checked against the DiT (family, size, rank layout, scale) before the DiT is loaded. The output is
written atomically (a temporary folder renamed at the end) and loads like any converted DiT folder: put it in a
snapshot as its diffusion_transformer_* folder, or load it with `pyramid_jax.load_dit`.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyramid_jax.errors import add_debug_flag, run_cli  # noqa: E402 (after the path setup)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dit", required=True, help="the base DiT folder (torch or converted)")
    p.add_argument("--lora", action="append", required=True, metavar="PATH[:SCALE]",
                   help="a LoRA folder and its scale (default 1); repeat to add several")
    p.add_argument("--output", required=True, help="the merged DiT folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    p.add_argument("--allow-pickle", action="store_true", help="allow a torch .bin base (read tensors only)")
    add_debug_flag(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    return run_cli(merge, argv)


def merge(argv) -> int:
    args = parse_args(argv)
    import jax.numpy as jnp
    from flax import nnx

    from pyramid_jax.dit.config import dit_config_to_dict
    from pyramid_jax.dit.load import load_dit, read_dit_config
    from pyramid_jax.io import weights
    from pyramid_jax.io.atomic import atomic_directory
    from pyramid_jax.lora.files import check_loras, merge_loras, parse_lora_arg

    if os.path.exists(args.output) and not args.overwrite:
        raise FileExistsError(f"--output {args.output} exists; pass --overwrite to replace it")
    config = read_dit_config(args.dit)
    loras = check_loras([parse_lora_arg(x) for x in args.lora], config)
    model = merge_loras(load_dit(args.dit, jnp.float32, allow_pickle=args.allow_pickle), loras)
    arrays = [(path, var.get_value()) for path, var in nnx.to_flat_state(nnx.state(model))]
    with atomic_directory(args.output, overwrite=True) as tmp:
        weights.write_converted(tmp, dit_config_to_dict(model.config), arrays)
    print(f"merged {len(loras)} LoRA(s) into {args.dit} -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
