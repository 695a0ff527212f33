"""T5-XXL text encoding time at release width (random weights): compile seconds, steady-state ms, prompts/s.

    python bench/text_encode.py [--layers 4] [--batch 2] [--dtype fp32|bf16] [--repeats 3]

The released T5-XXL encoder has 24 blocks (4.76 B parameters, 19 GB in fp32), more than a small CPU box holds,
so `--layers` keeps the first blocks; the full-depth time is extrapolated per block. Prompts are tokenized to
128 tokens with the fixture T5 tokenizer (real padding masks; ids are valid in the large vocabulary).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
from flax import nnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyramid_jax.parallel.compiled import ModelProgram, PlacedModel  # noqa: E402
from pyramid_jax.text.config import T5EncoderConfig  # noqa: E402
from pyramid_jax.text.encoder import T5_MAX_LENGTH  # noqa: E402
from pyramid_jax.text.t5 import T5Encoder  # noqa: E402

FIXTURE_TEXT = os.path.join(ROOT, "tests", "fixtures", "text")
DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}


def count(module) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(module)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4, help="T5 blocks to build (released: 24)")
    parser.add_argument("--batch", type=int, default=2, help="prompts per call (the sampler's CFG pair is 2)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from transformers import T5TokenizerFast

    release = T5EncoderConfig()
    config = release.replace(num_layers=args.layers)
    dtype = DTYPES[args.dtype]
    model = T5Encoder(config, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=dtype)
    built, per_block = count(model), count(model.blocks[0])
    full = built + (release.num_layers - args.layers) * per_block

    prompts = json.load(open(os.path.join(FIXTURE_TEXT, "meta.json")))["prompts"]
    prompts = [prompts[i % len(prompts)] for i in range(args.batch)]
    tokenizer = T5TokenizerFast.from_pretrained(os.path.join(FIXTURE_TEXT, "flux", "tokenizer_2"))
    tokens = tokenizer(prompts, padding="max_length", max_length=T5_MAX_LENGTH, truncation=True, return_tensors="np")
    ids, mask = jnp.asarray(tokens["input_ids"], jnp.int32), jnp.asarray(tokens["attention_mask"], jnp.int32)

    encode = ModelProgram(lambda t5, ids, mask: t5(ids, mask))
    start = time.perf_counter()
    compiled = encode.compile(PlacedModel(model), ids, mask)
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(ids, mask))
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(ids, mask))
        times.append(time.perf_counter() - start)
    best = min(times)
    full_s = best * (release.num_layers / args.layers)  # embedding and final norm are negligible

    print(f"T5-XXL encoder, {args.layers}/{release.num_layers} blocks: {built / 1e9:.3f} B params built "
          f"({per_block / 1e6:.1f} M per block; full depth {full / 1e9:.3f} B), {args.dtype}, "
          f"{jax.devices()[0].device_kind} x{jax.device_count()}")
    print(f"batch {args.batch} x {T5_MAX_LENGTH} tokens: compile {compile_s:.2f} s; forward {best * 1e3:.0f} ms "
          f"(min of {args.repeats}), {args.batch / best:.2f} prompts/s, {args.batch * T5_MAX_LENGTH / best:,.0f} "
          f"tokens/s")
    print(f"full depth (extrapolated): {full_s * 1e3:.0f} ms per batch, {args.batch / full_s:.2f} prompts/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
