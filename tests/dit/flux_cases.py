"""Reads DiT fixture cases (torch NCTHW) into our call arguments (channels-last)."""

import jax.numpy as jnp

from conftest import ncthw_to_cl


def load_case(npz, case: str):
    """(args for the DiT call, list of reference outputs `[B, T, H, W, C]`) for `case` in a cases.npz."""
    prefix = f"{case}/" if case else ""
    stages = sorted({k.split("/")[-2] for k in npz.files if k.startswith(prefix + "sample/")})
    sample = []
    for s in stages:
        clips = sorted((k for k in npz.files if k.startswith(f"{prefix}sample/{s}/")),
                       key=lambda k: int(k.rsplit("/c", 1)[1]))
        sample.append([jnp.asarray(ncthw_to_cl(npz[k])) for k in clips])
    args = (sample,) + tuple(jnp.asarray(npz[prefix + k]) for k in (
        "encoder_hidden_states", "encoder_attention_mask", "pooled_projections", "timestep_ratio"))
    outputs = [ncthw_to_cl(npz[f"{prefix}output/{s}"]) for s in stages]
    return args, outputs


def case_names(npz):
    return sorted({k.split("/")[0] for k in npz.files})
