"""Reads the recorded sampler runs (tests/fixtures/sampler) and replays their DiT calls without a DiT."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pyramid_jax.sampling.noise import RecordedNoise
from pyramid_jax.sampling.sampler import TextConditioning

from conftest import FIXTURES, ncthw_to_cl

# Our fp32 DiT differs from torch's by ~4e-6 of its output scale per call (tests/dit); guidance x7 over 6 to 18
# calls brings the latents to ~1.5e-5 of their scale. Bound: max |ours - ref| <= MAX_REL * max |ref|.
MAX_REL = 2.5e-5


def load_run(name: str):
    """(npz, the recorded `generate*` arguments, text conditioning, noise) of sampler fixture `name`."""
    npz = np.load(FIXTURES / "sampler" / f"{name}.npz")
    call = json.loads((FIXTURES / "sampler" / f"{name}.json").read_text())["call"]
    text = TextConditioning(*(jnp.asarray(npz[f"dit_text/{k}"]) for k in (
        "encoder_hidden_states", "encoder_attention_mask", "pooled_projections")))
    blocks = [ncthw_to_cl(npz[k]) for k in sorted(npz.files) if k.startswith("rng/") and k.endswith("block_noise")]
    return npz, call, text, RecordedNoise(ncthw_to_cl(npz["rng/000_init_latents"]), blocks, num_stages=3)


def run_recorded(sampler, npz, call, text, noise):
    """The recorded `generate` (or, with an input image, `generate_i2v`) call on our sampler: `[B, T, H, W, C]`.

    Image-to-video starts from the recorded image latent (frame 0 of the output) and uses one step list.
    """
    first_frame = None if "height" in call else jnp.asarray(ncthw_to_cl(npz["output_latents"][:, :, :1]))
    steps = call["num_inference_steps"]
    return sampler.video(text, noise, call["temp"], steps, call.get("video_num_inference_steps", steps),
                         call["guidance_scale"], call["video_guidance_scale"], history=first_frame)


def recorded_calls(npz):
    """Every recorded DiT call in order: (clips `[B, T, H, W, C]`, timestep_ratio, output `[B, T, H, W, C]`)."""
    calls = sorted({k.split("/")[1] for k in npz.files if k.startswith("dit_calls/")})
    out = []
    for c in calls:
        clips = sorted((k for k in npz.files if k.startswith(f"dit_calls/{c}/sample/s0/")),
                       key=lambda k: int(k.rsplit("/c", 1)[1]))
        out.append(([ncthw_to_cl(npz[k]) for k in clips], npz[f"dit_calls/{c}/timestep_ratio"],
                    ncthw_to_cl(npz[f"dit_calls/{c}/output/s0"])))
    return out


class CallLog:
    """(clips, timestep_ratio) of every DiT call in execution order; hashed by identity (it sits in a graphdef)."""

    def __init__(self):
        self.calls = []

    def record(self, clips, timestep_ratio):
        self.calls.append(([np.asarray(c) for c in clips], np.asarray(timestep_ratio)))


class ReplayDiT(nnx.Module):
    """Stands in for the DiT: answers each call with the reference's recorded output and logs what it was given.

    A call is identified by its clip shapes (unit and stage) and its timestep (step).
    """

    def __init__(self, calls, log: CallLog):
        groups: dict[tuple, list[int]] = {}
        for i, (clips, _, _) in enumerate(calls):
            groups.setdefault(tuple(c.shape for c in clips), []).append(i)
        self.shapes = tuple(groups)
        self.timesteps = nnx.List([nnx.Variable(jnp.asarray(np.stack([calls[i][1][0] for i in idx])))
                                   for idx in groups.values()])
        self.outputs = nnx.List([nnx.Variable(jnp.asarray(np.stack([calls[i][2] for i in idx])))
                                 for idx in groups.values()])
        self._log = log

    def __call__(self, sample, encoder_hidden_states, encoder_attention_mask, pooled_projections, timestep_ratio):
        group = self.shapes.index(tuple(c.shape for c in sample[0]))
        step = jnp.argmin(jnp.abs(self.timesteps[group][...] - timestep_ratio[0]))
        jax.debug.callback(self._log.record, sample[0], timestep_ratio, ordered=True)
        return [self.outputs[group][...][step]]
