"""Analytic FLOP count of the DiT (both families), the numerator of MFU.

Counts every matmul of the model as 2 FLOPs per multiply-add: the embedders, the AdaLN modulation linears, the
q/k/v/out projections, the MLPs and attention's `q k^T` and `p v` over the whole `[text ; image]` sequence: the
dense score matrix of the `xla` backend, masked part included (the `chunked`, `blockwise` and `splash` backends
skip blocks the temporal-causal mask hides, so with them MFU counts that skipped work as done). Elementwise work
(norms, RoPE, softmax, GELU) is left out. The last block computes only the current clip's rows, the DiT's output.
A train step costs 3x the forward (the backward computes two matmuls per forward matmul); recomputation under
remat is not counted, as usual for MFU.
"""

from __future__ import annotations

import math
from typing import Sequence

from pyramid_jax.dit.config import MMDiTConfig
from pyramid_jax.layers.embeddings import TIMESTEP_FREQ_DIM

TRAIN_FACTOR = 3  # forward + backward


def _joint_block(image: int, text: int, dim: int, rows: int | None = None) -> int:
    """One two-stream block on one sample. `rows` (MMDiT's last block, whose text stream ends there): only the last
    `rows` image tokens' queries and outputs are computed, and there is no text output projection or MLP."""
    seq = image + text
    queries = seq if rows is None else rows
    modulation = 2 * 6 * dim * dim + 2 * (6 if rows is None else 2) * dim * dim
    qkv = 2 * (2 * seq + queries) * dim * dim
    outputs = image if rows is None else rows
    image_out = 2 * outputs * dim * dim + 2 * 2 * outputs * dim * 4 * dim  # to_out, MLP D -> 4D -> D
    text_out = 0 if rows is not None else 2 * text * dim * dim + 2 * 2 * text * dim * 4 * dim
    return modulation + qkv + image_out + text_out + 2 * 2 * queries * seq * dim


def _single_block(image: int, text: int, dim: int, rows: int | None = None) -> int:
    """One Flux single-stream block on one sample: qkv, proj_mlp D -> 4D, proj_out 5D -> D, attention; `rows` (the
    last block): only the last `rows` tokens' queries and outputs are computed."""
    seq = image + text
    queries = seq if rows is None else rows
    return (2 * 3 * dim * dim + 2 * seq * dim * 2 * dim + 2 * queries * dim * (dim + 4 * dim + 5 * dim)
            + 2 * 2 * queries * seq * dim)


def dit_forward_flops(config, sample: Sequence[Sequence[Sequence[int]]], text_len: int) -> int:
    """FLOPs of one DiT call on `sample`: per stage column, the shapes `[B, T, H, W, C]` of its clips (history
    first, current last), as in `FlowInputs.sample`; `text_len` text tokens per row."""
    dim, channels = config.inner_dim, config.latent_channels
    pooled, text_dim = config.pooled_projection_dim, config.joint_attention_dim
    single_layers = getattr(config, "num_single_layers", 0)
    text_ends = isinstance(config, MMDiTConfig)  # the MMDiT's last joint block ends the text stream
    total = 0
    for clips in sample:
        batch = clips[0][0]
        image = sum(math.prod(shape[1:4]) for shape in clips) // 4  # 2x2 latent patches
        current = math.prod(clips[-1][1:4]) // 4
        per_sample = (
            2 * (TIMESTEP_FREQ_DIM * dim + dim * dim) + 2 * (pooled * dim + dim * dim)  # timestep + pooled text
            + 2 * text_len * text_dim * dim + 2 * image * 4 * channels * dim  # text and patch embedders
            + sum(_joint_block(image, text_len, dim, current if text_ends and i == config.num_layers - 1 else None)
                  for i in range(config.num_layers))
            + 2 * 2 * dim * dim + 2 * current * dim * 4 * channels)  # norm_out, proj_out
        if single_layers:  # the last single block computes the current clip's rows only
            per_sample += ((single_layers - 1) * _single_block(image, text_len, dim)
                           + _single_block(image, text_len, dim, current))
        total += batch * per_sample
    return total


def train_step_flops(config, sample: Sequence[Sequence[Sequence[int]]], text_len: int) -> int:
    """Model FLOPs of one train step (forward and backward) on the DiT inputs `sample`."""
    return TRAIN_FACTOR * dit_forward_flops(config, sample, text_len)
