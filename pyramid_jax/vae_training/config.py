"""A VAE training run's configuration (`configs/train/<name>.py` returning a `VAETrainConfig`), with the recipe's
values of `scripts/train_causal_video_vae.sh` as defaults (vae_spec.md §5)."""

from __future__ import annotations

import dataclasses
import math

from pyramid_jax.parallel.distributed import Distributed
from pyramid_jax.parallel.mesh import MeshConfig
from pyramid_jax.training.data.errors import OnError
from pyramid_jax.training.loop import LoopConfig
from pyramid_jax.training.optimizer import OptimizerConfig

# AdamW over the VAE: the torch default betas (the script's --opt_betas never reach the optimizer), weight decay
# 1e-3 on matrices and kernels, warmup linspace(0, 1e-4, 2000) then cosine to 1e-5 over the other 198k steps.
VAE_OPTIMIZER = OptimizerConfig(learning_rate=1e-4, warmup_steps=2000, warmup_start=0.0, b1=0.9, b2=0.999,
                                weight_decay=1e-3, decay_steps=198_000, min_learning_rate=1e-5)


@dataclasses.dataclass(frozen=True)
class VAELossConfig:
    """`pixel_weight * MSE + perceptual_weight * LPIPS` per frame, mean over frames, `+ kl_weight * KL`.

    The defaults are the recipe's plain MSE and frame mean. On a known plain `background` (RGB, 0-255), pixels whose
    target lies more than `foreground_distance` (RGB units) from it weigh `1 + foreground_weight` in the MSE (a
    weighted mean, so its scale stays that of an MSE): small shapes on a flat background then own a fair share of the
    loss instead of ~1/10. `first_frame_weight` weighs frame 0 (coded alone, the image / i2v frame) in the frame mean.
    """

    pixel_weight: float = 10.0
    perceptual_weight: float = 0.0  # the recipe's 1.0 needs LPIPS weights (`VAETrainConfig.lpips`)
    kl_weight: float = 1e-12  # the recipe's value (the script's default is 1e-6)
    foreground_weight: float = 0.0  # > 0 needs `background`
    background: tuple[int, int, int] | None = None
    foreground_distance: float = 60.0
    first_frame_weight: float = 1.0

    def __post_init__(self):
        if self.foreground_weight < 0 or self.first_frame_weight <= 0 or self.foreground_distance <= 0:
            raise ValueError("loss.foreground_weight must be >= 0, loss.first_frame_weight and "
                             "loss.foreground_distance > 0; got "
                             f"{self.foreground_weight}, {self.first_frame_weight}, {self.foreground_distance}")
        if self.foreground_weight > 0 and (self.background is None or len(self.background) != 3):
            raise ValueError(f"loss.foreground_weight > 0 needs loss.background=(r, g, b) in 0-255, got "
                             f"{self.background!r}")


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
    """The PatchGAN (vae_spec.md §5.3), built and trained only when `VAEStepConfig.disc_weight` > 0."""

    ndf: int = 64
    n_layers: int = 4
    optimizer: OptimizerConfig = VAE_OPTIMIZER  # the recipe's lr_disc, 1e-4, equals the VAE's learning rate
    max_loss: float = math.inf
    ema_decay: float = 0.0  # (no EMA is kept of the discriminator)
    ema_every: int = 1


@dataclasses.dataclass(frozen=True)
class VAEStepConfig:
    loss: VAELossConfig = VAELossConfig()
    optimizer: OptimizerConfig = VAE_OPTIMIZER
    crop: tuple[int, int] = ()  # (height, width): train on a random crop of each clip; () = whole frames
    ema_decay: float = 0.999
    ema_every: int = 1
    max_loss: float = math.inf  # the VAE recipe skips no step for its loss value (non-finite ones still are)
    disc_weight: float = 0.0  # > 0 adds the adaptively weighted GAN term (0: the released recipe; else its 0.5)
    disc_start: int = 250_000  # steps before the GAN term and the discriminator's training start
    discriminator: DiscriminatorConfig = DiscriminatorConfig()


@dataclasses.dataclass(frozen=True)
class VAEDataConfig:
    annotation: str = ""  # jsonl with a `video` (or `image`) file per line
    batch_size: int = 2  # global clips per step
    frames: int = 17  # video frames per clip, 1 + 8k (the recipe's stage 1; stage 2 uses 33)
    resolution: tuple[int, int] = (256, 256)  # (height, width) pixels each clip is resized and centre-cropped to
    on_error: OnError = OnError.FAIL  # a missing or broken file: fail naming it, or skip (logged and counted)
    read_threads: int = 4
    prefetch: int = 4

    def __post_init__(self):
        if self.frames < 1 or (self.frames - 1) % 8:
            raise ValueError(f"data.frames must be 1 + 8k (the VAE's frame rule), got {self.frames}")


@dataclasses.dataclass(frozen=True)
class VAETrainConfig:
    vae: str  # a VAE folder: config.json (the architecture) and, unless from_scratch, the weights to finetune
    from_scratch: bool = False  # initialise the VAE randomly from its config instead of loading weights
    # From scratch only: start the posterior's log-variance here (quant_conv's bias) instead of ~0. A fresh encoder's
    # means are ~0.05, so unit posterior noise drowns them and Adam needs ~|init|/lr steps to shrink it.
    initial_logvar: float | None = None
    # From scratch only: conv kernels drawn from N(0, 1/fan_in) (variance preserving) instead of the release's
    # N(0, 0.02), which scales a conv's output by 0.02·sqrt(fan_in) (1/12 to 1/1.7 in the demo VAE) and slows its start.
    fan_in_init: bool = False
    # Train the decoder (and post_quant_conv) only; the loaded encoder, and so its latent space, stays as it is: a
    # sharper decoder for latents a DiT was already trained on.
    decoder_only: bool = False
    lpips: str = ""  # LPIPS weights for the perceptual loss: vgg_lpips.pth (allow_pickle), safetensors or converted
    allow_pickle: bool = False  # read torch pickles (.pth / .bin): only for files you trust
    compute_dtype: str = "bfloat16"  # conv dtype; master weights and optimizer state stay float32
    output_dir: str = "out/train_vae"  # checkpoints in <output_dir>/checkpoints, the final model in <output_dir>/model
    max_to_keep: int = 3
    ema: bool = False  # keep an EMA of the weights (exported instead of the raw weights when on)
    distributed: Distributed = Distributed.AUTO
    mesh: MeshConfig = MeshConfig()  # clips split over data x fsdp; the VAE's weights are replicated (rules.py)
    data: VAEDataConfig = VAEDataConfig()
    step: VAEStepConfig = VAEStepConfig()
    loop: LoopConfig = LoopConfig(num_steps=200_000, save_every=2000)  # temporal_pyramid / max_units: DiT only

    def __post_init__(self):
        if not self.from_scratch and (self.fan_in_init or self.initial_logvar is not None):
            raise ValueError("fan_in_init and initial_logvar initialise a fresh VAE: they need from_scratch=True")
        if self.decoder_only and self.from_scratch:
            raise ValueError("decoder_only keeps the loaded encoder: it needs from_scratch=False and a trained vae")
