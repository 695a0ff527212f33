"""Encode the captions of a jsonl annotation file with the text encoder, for training without it.

    python tools/extract_text_features.py --snapshot pyramid-flow-miniflux --family pyramid_flux \
        --annotation data/latents/annotation.jsonl --output-dir data/text

Each record's `text` is encoded (CLIP pooled + T5 tokens, 128 of them) and saved as .npz (embeds, mask, pooled;
see pyramid_jax/training/data/storage.py) at the record's `text_fea` path, else `<output_dir>/<line>.npz`. The
encoding of "" goes to `<output_dir>/null_text.npz`, for caption dropout (`data.null_text`). The annotation is
written again with `text_fea` filled in (--out-annotation). Existing files are kept unless --overwrite. A record
without a caption stops the run; with --on-error skip it is logged, counted and left out.
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
    p.add_argument("--snapshot", required=True, help="snapshot folder with tokenizer*/ and text_encoder*/")
    p.add_argument("--family", default="pyramid_flux", choices=("pyramid_flux", "pyramid_mmdit"))
    p.add_argument("--annotation", required=True, help="input jsonl with a `text` per line")
    p.add_argument("--output-dir", required=True, help="folder for features without a `text_fea` path")
    p.add_argument("--out-annotation", default=None, help="output jsonl (default: <output_dir>/annotation.jsonl)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16", help="encoder compute dtype")
    p.add_argument("--save-dtype", choices=("float16", "float32"), default="float16")
    p.add_argument("--on-error", choices=("fail", "skip"), default="fail")
    p.add_argument("--overwrite", action="store_true")
    add_debug_flag(p)
    from pyramid_jax.compile_cache import add_compile_cache_flags

    add_compile_cache_flags(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    return run_cli(run, argv)


def run(argv) -> int:
    args = parse_args(argv)
    from pyramid_jax.compile_cache import setup_compile_cache

    setup_compile_cache(args)
    import jax.numpy as jnp
    import numpy as np

    import pyramid_jax
    from pyramid_jax.sampling import TextConditioning
    from pyramid_jax.training.data.annotations import read_annotations, sample_path, write_annotations
    from pyramid_jax.training.data.errors import BadFiles, DataError
    from pyramid_jax.training.data.readers import field
    from pyramid_jax.training.data.storage import NULL_TEXT_FILE, save_text

    encoder = pyramid_jax.load_text_encoder(args.snapshot, args.family, jnp.dtype(args.dtype))

    def encode(captions, paths):
        encoded = [np.asarray(x) for x in encoder(captions)]
        for row, path in enumerate(paths):
            embeds, mask, pooled = (x[row] for x in encoded)
            save_text(path, TextConditioning(embeds.astype(args.save_dtype), mask, pooled.astype(args.save_dtype)))

    bad, done, pending = BadFiles(args.on_error), [], []
    records = read_annotations(args.annotation)
    for index, record in enumerate(records):
        try:
            caption = field(record, "text")
        except DataError as e:
            bad.report(e)
            continue
        path = sample_path(record, "text_fea", args.output_dir, index, ".npz")
        if args.overwrite or not os.path.isfile(path):
            pending.append((caption, path))
        done.append({**record, "text_fea": path})
    for start in range(0, len(pending), args.batch_size):
        encode(*zip(*pending[start:start + args.batch_size]))
        print(f"[{min(start + args.batch_size, len(pending))}/{len(pending)}] captions encoded")
    encode([""], [os.path.join(args.output_dir, NULL_TEXT_FILE)])
    out = args.out_annotation or os.path.join(args.output_dir, "annotation.jsonl")
    write_annotations(out, done)
    print(f"wrote {len(done)} of {len(records)} records to {out} ({bad.count} skipped), "
          f"null text to {os.path.join(args.output_dir, NULL_TEXT_FILE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
