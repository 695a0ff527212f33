"""`PyramidFlowPipeline`: text-to-video and image-to-video from a released snapshot (pipeline_spec.md §4, §7).

Text encoder -> pyramidal sampler with the DiT -> VAE decode, with the reference's argument names. Randomness comes
from an explicit key (or seed); every argument is checked before any model runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from pyramid_jax import validation
from pyramid_jax.clip_input import Clip, read_clip
from pyramid_jax.dit.families import denormalize_latents, family_of_config, normalize_latents
from pyramid_jax.dit.load import DIT, load_dit, read_dit_config
from pyramid_jax.errors import ArgumentError
from pyramid_jax.layers.attention import check_backend
from pyramid_jax.lora.files import check_loras, merge_loras
from pyramid_jax.presets import ModelPreset, find_preset
from pyramid_jax.sampling.noise import KeyNoise, NoiseSource
from pyramid_jax.sampling.sampler import PyramidSampler, guidance_rows
from pyramid_jax.sampling.scheduler import PyramidFlowScheduler
from pyramid_jax.snapshot import Snapshot, sampling_defaults
from pyramid_jax.text.conditioning import TextConditioning
from pyramid_jax.text.encoder import load_text_encoder
from pyramid_jax.text.load import TEXT
from pyramid_jax.training.data.frames import to_unit_range
from pyramid_jax.vae.load import VAE, load_vae

DEFAULT_NEGATIVE_PROMPT = ("cartoon style, worst quality, low quality, blurry, absolute black, absolute white, "
                           "low res, extra limbs, extra digits, misplaced objects, mutated anatomy, monochrome, horror")
PROMPT_SUFFIX = ", hyper quality, Ultra HD, 8K"  # appended to every positive prompt, as the reference does
OUTPUT_TYPES = ("pil", "np", "latent")


def native_preset(dit_folders: Sequence[str], family: str, variant: str, config) -> ModelPreset | None:
    """The native size and max temp of the first DiT folder whose `sampling.json` gives them, else the released
    variant's preset (None for a custom variant)."""
    for folder in dit_folders:
        native = sampling_defaults(folder)
        if {"width", "height", "max_temp"} <= native.keys():
            return ModelPreset(family, variant, config, native["width"], native["height"], native["max_temp"])
    return find_preset(family, variant)


@dataclasses.dataclass
class LazyModel:
    """A model loaded on first use (`with lazy.use() as model`); unless `keep`, released after each use (then only
    one model is resident). `model` is the resident model, or None."""

    load: Callable[[], Any]
    keep: bool
    model: Any = None

    @contextlib.contextmanager
    def use(self):
        if self.model is None:
            self.model = self.load()
        try:
            yield self.model
        finally:
            if not self.keep:
                self.model = None


class PyramidFlowPipeline:
    """Generates videos (or images, temp=1) with one DiT variant of a Pyramid Flow snapshot."""

    def __init__(self, family: str, variant: str, latent_channels: int, text_encoder: LazyModel,
                 dit: LazyModel, vae: LazyModel, preset: ModelPreset | None,
                 scheduler: PyramidFlowScheduler | None = None, mesh: Mesh | None = None):
        self.family, self.variant, self.latent_channels, self.preset = family, variant, latent_channels, preset
        self.text_encoder, self.dit, self.vae = text_encoder, dit, vae
        self.scheduler = scheduler or PyramidFlowScheduler()
        self.mesh = mesh

    @classmethod
    def from_pretrained(cls, path: str | Snapshot, variant: str = "diffusion_transformer_384p", dtype=jnp.bfloat16,
                        mesh: Mesh | None = None, *, save_memory: bool = False, allow_pickle: bool = False,
                        lora: Sequence[tuple[str, float]] = (), dit: str | None = None,
                        attention_backend: str | None = None) -> "PyramidFlowPipeline":
        """A pipeline on snapshot `path` (released torch layout or converted by `convert_torch_weights.py`).

        `variant` is the DiT folder (`diffusion_transformer_{384p,768p,image}`). Models are loaded on first use in
        `dtype`. With a `mesh`, weights are sharded by the rule table (DiT over fsdp / tensor) and the prompt batch
        (CFG rows, latents, noise) is split over data, so every model runs as one program over all of the mesh's
        devices. `save_memory` releases each model after use, so that only one of text encoder, DiT and VAE is
        resident at a time (each call then reloads them); the generation calls' `save_memory` (the reference's
        name) decodes in small pieces. `lora`: `(folder, scale)` pairs of LoRA folders
        (written by a `train.py ... lora.rank=r` run) added into the DiT's weights as it loads; each is checked
        against the DiT here, before any model loads. `dit`: a DiT folder used instead of the snapshot's `variant`
        (e.g. `train.py`'s `<output_dir>/model`), with the rest of the snapshot. The native size and max temp come
        from the DiT folder's `sampling.json` (else the snapshot's `variant` folder's), else the released variant.
        `attention_backend` overrides the DiT config's (see `layers/attention.py`; default: the config's,
        normally `auto`).
        """
        snapshot = Snapshot(path)
        dit_path = snapshot.dit(variant) if dit is None else dit
        overrides = {} if attention_backend is None else {"attention_backend": check_backend(attention_backend)}
        config = read_dit_config(dit_path, **overrides)
        family = family_of_config(config).name
        vae_path = snapshot.vae
        _, text_paths = snapshot.text_folders(family)
        for kind, folder in ((DIT, dit_path), (VAE, vae_path), *((TEXT, p) for p in text_paths)):
            # A bad config.json or unreadable weights fail now; the VAE, first loaded after sampling, also has its
            # weights' names and shapes checked (the others load before any sampling).
            kind.check(folder, allow_pickle, shapes=kind is VAE)
        loras = check_loras(lora, config)
        keep = not save_memory
        kw = dict(mesh=mesh, allow_pickle=allow_pickle)
        return cls(family, variant, config.latent_channels,
                   LazyModel(lambda: load_text_encoder(snapshot, family, dtype, **kw), keep),
                   LazyModel(lambda: merge_loras(load_dit(dit_path, dtype, **kw, **overrides), loras, mesh), keep),
                   LazyModel(lambda: load_vae(vae_path, dtype, **kw), keep),
                   native_preset([dit_path, os.path.join(snapshot.path, variant)], family, variant, config),
                   mesh=mesh)

    # -- entry points ---------------------------------------------------------------------------------------------

    def generate(self, prompt: str | Sequence[str], height: int | None = None, width: int | None = None,
                 temp: int = 1, num_inference_steps: int | Sequence[int] = 28,
                 video_num_inference_steps: int | Sequence[int] = 28, guidance_scale: float = 7.0,
                 video_guidance_scale: float = 7.0, min_guidance_scale: float = 2.0, use_linear_guidance: bool = False,
                 alpha: float = 0.5, negative_prompt: str | Sequence[str] | None = DEFAULT_NEGATIVE_PROMPT,
                 num_images_per_prompt: int = 1, seed: int = 0, key: jax.Array | None = None,
                 output_type: str = "pil", save_memory: bool = True,
                 callback: Callable[[int, int], None] | None = None, noise: NoiseSource | None = None,
                 window: int | None = None, on_unit: Callable[[jax.Array], None] | None = None):
        """Text-to-video: `temp` latent frames (8 (temp - 1) + 1 video frames; temp=1 is an image).

        Unit 0 uses `num_inference_steps` / `guidance_scale`, later units the `video_*` values. Returns, by
        `output_type`: "latent" `[B, temp, H/8, W/8, C]` DiT latents, "np" uint8 `[B, frames, H, W, 3]`, or "pil"
        a list of PIL frames (B x frames, as the reference). `noise` replays given draws instead of `key`/`seed`.
        Past `window` latent frames (default: the variant's trained maximum) each unit sees only the latest ones.
        `on_unit(latents so far)` runs after every unit, e.g. to keep the finished units on disk.
        """
        prompts = self._check_prompts(prompt, negative_prompt, num_images_per_prompt, output_type)
        height, width = self._check_size(height, width)
        self._check_temp(temp, minimum=1)
        window = self._check_window(window)
        steps = self._check_steps(num_inference_steps, "num_inference_steps")
        video_steps = self._check_steps(video_num_inference_steps, "video_num_inference_steps")
        guidance_scale, video_guidance_scale, min_guidance_scale, alpha = _check_guidance(
            guidance_scale, video_guidance_scale, min_guidance_scale, alpha)
        key = validation.seed_key(seed) if key is None and noise is None else key
        batch = len(prompts) * num_images_per_prompt
        text = self.encode_prompt(prompts, negative_prompt, num_images_per_prompt, guidance_scale > 0)
        noise = noise or self._key_noise(key, batch, height, width, text.embeds.dtype)
        scales = _linear_guidance(guidance_scale, alpha, min_guidance_scale, temp) if use_linear_guidance else None
        with self.dit.use() as dit:
            latents = PyramidSampler(dit, self.scheduler, self.mesh).video(
                text, noise, temp, steps, video_steps, guidance_scale, video_guidance_scale, callback=callback,
                unit_guidance_scales=scales, window=window, on_unit=on_unit)
        return self._output(latents, output_type, save_memory)

    def generate_i2v(self, prompt: str | Sequence[str], input_image, temp: int = 1,
                     num_inference_steps: int | Sequence[int] = 28, guidance_scale: float = 7.0,
                     video_guidance_scale: float = 4.0, min_guidance_scale: float = 2.0,
                     use_linear_guidance: bool = False, alpha: float = 0.5,
                     negative_prompt: str | Sequence[str] | None = DEFAULT_NEGATIVE_PROMPT,
                     num_images_per_prompt: int = 1, seed: int = 0, key: jax.Array | None = None,
                     output_type: str = "pil", save_memory: bool = True,
                     callback: Callable[[int, int], None] | None = None, noise: NoiseSource | None = None,
                     posterior_noise: jax.Array | None = None, window: int | None = None,
                     on_unit: Callable[[jax.Array], None] | None = None):
        """Image-to-video: `input_image` (PIL image or uint8 `[H, W, 3]` RGB, already at the target size) is frame 0;
        the other `temp - 1` units use `num_inference_steps` and `video_guidance_scale` (`guidance_scale` only
        switches guidance on, as in the reference). The image latent is a posterior sample: `posterior_noise`
        `[1, 1, H/8, W/8, C]` replays a given draw. `window`, `on_unit` and outputs as `generate`.
        """
        prompts = self._check_prompts(prompt, negative_prompt, num_images_per_prompt, output_type)
        pixels = _image_pixels(input_image)
        height, width = self._check_size(*pixels.shape[:2], what="input_image")
        self._check_temp(temp, minimum=1)
        window = self._check_window(window)
        steps = self._check_steps(num_inference_steps, "num_inference_steps")
        guidance_scale, video_guidance_scale, min_guidance_scale, alpha = _check_guidance(
            guidance_scale, video_guidance_scale, min_guidance_scale, alpha)
        key = validation.seed_key(seed) if key is None else key
        batch = len(prompts) * num_images_per_prompt
        text = self.encode_prompt(prompts, negative_prompt, num_images_per_prompt, guidance_scale > 0)
        noise_key, posterior_key = jax.random.split(key)
        noise = noise or self._key_noise(noise_key, batch, height, width, text.embeds.dtype)
        with self.vae.use() as vae:
            posterior = vae.encode(jnp.asarray(pixels)[None, None])
            image_latent = posterior.sample(None if posterior_noise is not None else posterior_key,
                                            noise=posterior_noise)
        first_frame = jnp.broadcast_to(normalize_latents(image_latent, self.family),
                                       (batch, *image_latent.shape[1:]))
        scales = _linear_guidance(guidance_scale, alpha, min_guidance_scale, temp) if use_linear_guidance else None
        with self.dit.use() as dit:
            latents = PyramidSampler(dit, self.scheduler, self.mesh).video(
                text, noise, temp, steps, steps, guidance_scale, video_guidance_scale, history=first_frame,
                callback=callback, unit_guidance_scales=scales, window=window, on_unit=on_unit)
        return self._output(latents, output_type, save_memory)

    def extend(self, prompt: str | Sequence[str], video, temp: int = 8,
               num_inference_steps: int | Sequence[int] = 28, guidance_scale: float = 5.0,
               negative_prompt: str | Sequence[str] | None = DEFAULT_NEGATIVE_PROMPT, num_images_per_prompt: int = 1,
               trim: bool = False, window: int | None = None, seed: int = 0, key: jax.Array | None = None,
               output_type: str = "pil", save_memory: bool = True,
               callback: Callable[[int, int], None] | None = None, noise: NoiseSource | None = None,
               on_unit: Callable[[jax.Array], None] | None = None):
        """Continues `video` by `temp` latent frames (8 temp video frames) and returns the whole video.

        `video` is uint8 frames `[T, H, W, 3]` or a video file (T = 1 + 8k; `trim` drops the oldest frames to fit),
        encoded with the causal VAE (posterior mean), or DiT latents `[T, h, w, C]` / `[B, T, h, w, C]` (an array or
        a `.npy` file, as `output_type="latent"` returns). Its latent frames are the history, taken through the
        temporal pyramid exactly as generated frames are. Every new unit uses `num_inference_steps` and
        `guidance_scale` (<= 0: no guidance). The unit at position u of the whole video draws `noise(u)`, so
        extending the latents of `generate(temp=T, seed=s)` with seed s gives `generate(temp=T + temp, seed=s)`.
        `window`, `on_unit` and outputs as `generate`.
        """
        prompts = self._check_prompts(prompt, negative_prompt, num_images_per_prompt, output_type)
        self._check_temp(temp, minimum=1)
        steps = self._check_steps(num_inference_steps, "num_inference_steps")
        window = self._check_window(window)
        guidance_scale = validation.real(guidance_scale, "guidance_scale")
        key = validation.seed_key(seed) if key is None and noise is None else key
        batch = len(prompts) * num_images_per_prompt
        clip = read_clip(video, trim)
        height, width = self._check_clip(clip, batch)
        text = self.encode_prompt(prompts, negative_prompt, num_images_per_prompt, guidance_scale > 0)
        noise = noise or self._key_noise(key, batch, height, width, text.embeds.dtype)
        history = self._clip_latents(clip, save_memory)
        history = jnp.broadcast_to(history, (batch, *history.shape[1:]))
        given = history.shape[1]
        with self.dit.use() as dit:
            latents = PyramidSampler(dit, self.scheduler, self.mesh).video(
                text, lambda unit: noise(given + unit), given + temp, steps, steps, guidance_scale, guidance_scale,
                history=history, callback=callback, window=window, on_unit=on_unit)
        return self._output(latents, output_type, save_memory)

    def decode_latent(self, latents: jax.Array, save_memory: bool = True) -> np.ndarray:
        """DiT latents `[B, T, h, w, C]` -> uint8 video `[B, 8 (T - 1) + 1, 8h, 8w, 3]`.

        The VAE streams one latent frame at a time with 256-pixel tiles (`save_memory`), else two with 512-pixel
        tiles; pixels map to `trunc(clip(127.5 x + 127.5, 0, 255))` like the reference's `.byte()`.
        """
        window, tile = (1, 256) if save_memory else (2, 512)
        z = denormalize_latents(jnp.asarray(latents, jnp.float32), self.family)
        with self.vae.use() as vae:
            video = np.asarray(vae.decode(z, temporal_chunk=True, window_size=window, tile_sample_min_size=tile))
        return np.clip(video * np.float32(127.5) + np.float32(127.5), 0, 255).astype(np.uint8)

    def encode_prompt(self, prompts: list[str], negative_prompt: str | Sequence[str] | None = DEFAULT_NEGATIVE_PROMPT,
                      copies: int = 1, guided: bool = True) -> TextConditioning:
        """CFG text rows `[negative; positive]` (each prompt, with the suffix, repeated `copies` times), or the
        positive rows only when not `guided`."""
        with self.text_encoder.use() as encoder:
            positive = TextConditioning(*(jnp.repeat(x, copies, axis=0)
                                          for x in encoder([p + PROMPT_SUFFIX for p in prompts])))
            if not guided:
                return positive
            negatives = [negative_prompt or ""] if isinstance(negative_prompt, (str, type(None))) else negative_prompt
            negative = encoder(list(negatives))
        if len(negatives) > 1:
            negative = TextConditioning(*(jnp.repeat(x, copies, axis=0) for x in negative))
        return guidance_rows(positive, negative)

    # -- helpers --------------------------------------------------------------------------------------------------

    def _check_clip(self, clip: Clip, batch: int) -> tuple[int, int]:
        """The pixel size of a clip to extend, after checking it against this variant and the prompt batch."""
        if clip.pixels is not None:
            return self._check_size(*clip.pixels.shape[1:3], what="video frames")
        rows, _, h, w, channels = clip.latents.shape
        if channels != self.latent_channels:
            raise ArgumentError(f"video latents have {channels} channels; {self.variant} takes "
                                f"{self.latent_channels} (latents [B, T, h, w, C] from this model's generate or "
                                "sample.py --save-latents)")
        if rows not in (1, batch):
            raise ArgumentError(f"video latents hold {rows} videos for {batch} prompt(s) x copies; give 1 or {batch}")
        return self._check_size(8 * h, 8 * w, what=f"video latents ({w}x{h} latent, 8x in pixels)")

    def _clip_latents(self, clip: Clip, save_memory: bool) -> jax.Array:
        """DiT latents `[1 or B, T, h, w, C]` of a checked clip: pixels go through the VAE encoder."""
        if clip.latents is not None:
            return jnp.asarray(clip.latents)
        with self.vae.use() as vae:
            posterior = vae.encode(jnp.asarray(to_unit_range(clip.pixels))[None], temporal_chunk=True,
                                   tile_sample_min_size=256 if save_memory else None)
        return normalize_latents(posterior.mode(), self.family)

    def _key_noise(self, key, batch: int, height: int, width: int, dtype) -> KeyNoise:
        return KeyNoise(key, batch, height // 8, width // 8, self.latent_channels, self.scheduler.stages,
                        self.scheduler.gamma, dtype)

    def _output(self, latents: jax.Array, output_type: str, save_memory: bool):
        if output_type == "latent":
            return latents
        video = self.decode_latent(latents, save_memory)
        if output_type == "np":
            return video
        from PIL import Image

        return [Image.fromarray(frame) for frame in video.reshape(-1, *video.shape[2:])]

    @property
    def size_multiple(self) -> int:
        """Pixel sizes must divide into whole 2x2 DiT patches at the lowest stage: 8 x 2^(stages - 1) x 2."""
        return 8 * 2 ** (self.scheduler.stages - 1) * 2

    def _check_size(self, height, width, what: str = "height and width") -> tuple[int, int]:
        if height is None or width is None:
            if self.preset is None:
                raise ArgumentError(f"give height and width: {self.variant} is not a released variant with a "
                                    "native size")
            height, width = height or self.preset.height, width or self.preset.width
        height, width = validation.integer(height, "height"), validation.integer(width, "width")
        m = self.size_multiple
        if height % m or width % m or height <= 0 or width <= 0:
            raise ArgumentError(f"{what} must be positive multiples of {m} (8x VAE, 2x per extra stage, 2x2 "
                                f"patches); got {width}x{height} (width x height). Resize, e.g. to "
                                f"{max(m, round(width / m) * m)}x{max(m, round(height / m) * m)}")
        return height, width

    @staticmethod
    def _check_temp(temp, minimum: int) -> None:
        validation.integer(temp, "temp (latent frames)", minimum=minimum)

    def _check_window(self, window) -> int | None:
        """The DiT's per-unit frame window: given, else the variant's trained maximum (None: unknown variant)."""
        if window is None:
            return self.preset.max_temp if self.preset is not None else None
        return validation.integer(window, "window (latent frames the DiT sees per unit)", minimum=1)

    def _check_steps(self, steps, name: str) -> tuple[int, ...]:
        return validation.step_counts(steps, name, self.scheduler.stages)

    @staticmethod
    def _check_prompts(prompt, negative_prompt, copies: int, output_type: str) -> list[str]:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt) if isinstance(prompt, (list, tuple)) else []
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ArgumentError(f"prompt must be a string or a non-empty list of strings; got {prompt!r}")
        if not isinstance(negative_prompt, (str, type(None))):
            negatives = list(negative_prompt) if isinstance(negative_prompt, (list, tuple)) else [negative_prompt]
            if not all(isinstance(p, str) for p in negatives):
                raise ArgumentError(f"negative_prompt must be a string, None or a list of strings; got "
                                    f"{negative_prompt!r}")
            if len(negatives) not in (1, len(prompts)):
                raise ArgumentError(f"{len(negatives)} negative prompts for {len(prompts)} prompts; give "
                                    f"1 or {len(prompts)}")
        validation.integer(copies, "num_images_per_prompt", minimum=1)
        if output_type not in OUTPUT_TYPES:
            raise ArgumentError(f"output_type must be one of {OUTPUT_TYPES}; got {output_type!r}")
        return prompts


def _check_guidance(guidance_scale, video_guidance_scale, min_guidance_scale, alpha) -> tuple[float, ...]:
    """Finite numbers (a NaN or infinite scale would silently give NaN video or switch guidance off)."""
    return tuple(validation.real(v, name) for v, name in (
        (guidance_scale, "guidance_scale"), (video_guidance_scale, "video_guidance_scale"),
        (min_guidance_scale, "min_guidance_scale"), (alpha, "alpha")))


def _linear_guidance(scale: float, alpha: float, minimum: float, temp: int) -> list[float]:
    """The reference's `use_linear_guidance`: unit u uses `max(scale - alpha u, minimum)` for both scales."""
    return [max(scale - alpha * u, minimum) for u in range(temp)]


def _image_pixels(image) -> np.ndarray:
    """PIL image or uint8 `[H, W, 3]` -> float32 `[H, W, 3]` in [-1, 1] (ToTensor, then Normalize(0.5, 0.5))."""
    if image is None:
        raise ArgumentError("generate_i2v needs an input_image (PIL image or uint8 [H, W, 3] RGB array)")
    pixels = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if pixels.ndim != 3 or pixels.shape[-1] != 3 or pixels.dtype != np.uint8:
        raise ArgumentError(f"input_image must be RGB uint8 [H, W, 3]; got {pixels.dtype} {pixels.shape}")
    return (pixels.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
