"""Convert a released PyTorch Pyramid Flow snapshot into pyramid-jax's format (Orbax checkpoints + configs).

    python convert_torch_weights.py --src SNAPSHOT_DIR --dst OUT_DIR [--components dit,vae,text] \
        [--variant diffusion_transformer_384p] [--dtype bf16|fp32]

The output is written to a temporary folder beside OUT_DIR and renamed into place only when every component
converted, so an interrupted or failed conversion never leaves a half-written OUT_DIR. With --overwrite, only the
--components given are replaced in an existing OUT_DIR; its other folders are kept.
"""

from __future__ import annotations

import argparse
import functools
import sys

from tqdm import tqdm

from pyramid_jax.errors import add_debug_flag, run_cli
from pyramid_jax.snapshot_conversion import COMPONENTS, DIT_VARIANTS, DTYPES, convert_snapshot


def main(argv=None) -> int:
    return run_cli(run, argv)


def run(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, help="torch snapshot folder (released layout)")
    parser.add_argument("--dst", required=True, help="output folder (must not exist unless --overwrite)")
    parser.add_argument("--components", default=",".join(COMPONENTS),
                        help=f"comma-separated subset of {','.join(COMPONENTS)}")
    parser.add_argument("--variant", default=DIT_VARIANTS[0], choices=DIT_VARIANTS, help="which DiT folder")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="cast weights (default: keep)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="read pickled .bin weights (tensors only: a restricted unpickler, no torch)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the --components in an existing --dst (its other folders are kept)")
    parser.add_argument("--allow-nonfinite", action="store_true", help="convert weights holding NaN or inf")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    progress = functools.partial(tqdm, unit="tensor", desc="converting")
    written = convert_snapshot(args.src, args.dst, args.components.split(","), args.variant, args.dtype,
                               args.allow_pickle, args.overwrite, progress=progress,
                               allow_nonfinite=args.allow_nonfinite)
    print(f"wrote {', '.join(written)} to {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
