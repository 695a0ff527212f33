"""Configs of the two DiT families, as the reference pipeline builds them (dit_spec.md §1, §3.1, §4.1)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from pyramid_jax.config import ConfigError, FrozenConfig
from pyramid_jax.layers.attention import BACKEND_NAMES
from pyramid_jax.layers.remat import REMAT_POLICIES

# Reference training/kernel switches with no numerical effect on the SDPA semantics this port implements:
# flash-attn (whose varlen path drops the temporal-causal mask, a quirk we do not copy) and torch gradient
# checkpointing (our memory knobs are our own options).
_REFERENCE_ONLY_FIELDS = frozenset({"use_flash_attn", "use_gradient_checkpointing", "gradient_checkpointing_ratio"})


@dataclasses.dataclass(frozen=True)
class FluxConfig(FrozenConfig):
    """`PyramidFluxTransformer` (miniFLUX): double- then single-stream blocks, 3-axis RoPE, 2x2 token packing."""

    # The Flux code stores but never reads `interp_condition_pos`: its condition positions are always interpolated.
    IGNORED_FIELDS: ClassVar[frozenset[str]] = _REFERENCE_ONLY_FIELDS | {"interp_condition_pos"}
    CLASS_NAME: ClassVar[str] = "PyramidFluxTransformer"
    REQUIRED_FIELDS: ClassVar[frozenset[str]] = frozenset({
        "in_channels", "num_layers", "num_single_layers", "attention_head_dim", "num_attention_heads",
        "joint_attention_dim", "pooled_projection_dim"})

    patch_size: int = 1
    in_channels: int = 64
    num_layers: int = 19
    num_single_layers: int = 38
    attention_head_dim: int = 64
    num_attention_heads: int = 24
    joint_attention_dim: int = 4096
    pooled_projection_dim: int = 768
    axes_dims_rope: tuple[int, ...] = (16, 24, 24)
    use_temporal_causal: bool = True
    attention_backend: str = "auto"  # see layers/attention.py: auto, xla, blockwise, ...
    remat_policy: str = "none"  # per-block gradient checkpointing, see layers/remat.py
    scan_layers: bool = False  # run the block stack as one lax.scan, see layers/block_stack.py

    def __post_init__(self):
        if self.patch_size != 1:
            raise ConfigError(f"FluxConfig.patch_size must be 1 (token packing is a fixed 2x2), got {self.patch_size}")
        if self.in_channels % 4:
            raise ConfigError(f"FluxConfig.in_channels must be 4 x latent channels, got {self.in_channels}")
        if self.num_single_layers < 1:  # the last one computes only the output rows (pyramid_flux.py)
            raise ConfigError(f"FluxConfig.num_single_layers must be at least 1, got {self.num_single_layers}")
        if len(self.axes_dims_rope) != 3 or any(a % 2 for a in self.axes_dims_rope):
            raise ConfigError(f"FluxConfig.axes_dims_rope must be 3 even sizes (t, h, w), got {self.axes_dims_rope}")
        if sum(self.axes_dims_rope) != self.attention_head_dim:
            raise ConfigError(
                f"FluxConfig.axes_dims_rope {self.axes_dims_rope} must sum to attention_head_dim "
                f"{self.attention_head_dim}")
        _check_runtime_options(self)

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def latent_channels(self) -> int:
        return self.in_channels // 4


@dataclasses.dataclass(frozen=True)
class MMDiTConfig(FrozenConfig):
    """`PyramidDiffusionMMDiT` (SD3-style): joint blocks, 2-D sincos positions plus temporal RoPE."""

    # `use_t5_mask` is stored but never read by the reference: the text mask is always applied.
    IGNORED_FIELDS: ClassVar[frozenset[str]] = _REFERENCE_ONLY_FIELDS | {"use_t5_mask"}
    CLASS_NAME: ClassVar[str] = "PyramidDiffusionMMDiT"
    REQUIRED_FIELDS: ClassVar[frozenset[str]] = frozenset({
        "in_channels", "num_layers", "attention_head_dim", "num_attention_heads", "caption_projection_dim",
        "joint_attention_dim", "pooled_projection_dim"})

    sample_size: int = 128
    patch_size: int = 2
    in_channels: int = 16
    num_layers: int = 24
    attention_head_dim: int = 64
    num_attention_heads: int = 24
    caption_projection_dim: int = 1152
    pooled_projection_dim: int = 2048
    pos_embed_max_size: int = 192
    max_num_frames: int = 200
    qk_norm: str = "rms_norm"
    pos_embed_type: str = "rope"
    temp_pos_embed_type: str = "sincos"
    joint_attention_dim: int = 4096
    use_temporal_causal: bool = False
    add_temp_pos_embed: bool = False
    interp_condition_pos: bool = False
    attention_backend: str = "auto"  # see layers/attention.py: auto, xla, blockwise, ...
    remat_policy: str = "none"  # per-block gradient checkpointing, see layers/remat.py
    scan_layers: bool = False  # run the block stack as one lax.scan, see layers/block_stack.py

    def __post_init__(self):
        if self.patch_size != 2:
            raise ConfigError(f"MMDiTConfig.patch_size must be 2 (tokens are 2x2 latent patches), "
                              f"got {self.patch_size}")
        if self.caption_projection_dim != self.inner_dim:
            raise ConfigError(
                f"MMDiTConfig.caption_projection_dim ({self.caption_projection_dim}) must equal num_attention_heads x "
                f"attention_head_dim ({self.num_attention_heads} x {self.attention_head_dim} = {self.inner_dim}): "
                "text tokens join the image tokens in every joint block")
        if self.inner_dim % 4 or self.attention_head_dim % 2:
            raise ConfigError(f"MMDiTConfig: the width {self.inner_dim} must be divisible by 4 (sincos quarters) and "
                              f"attention_head_dim {self.attention_head_dim} even (RoPE pairs)")
        if self.sample_size < self.patch_size or self.pos_embed_max_size < 1:
            raise ConfigError(f"MMDiTConfig: need sample_size >= patch_size and pos_embed_max_size >= 1, got "
                              f"{self.sample_size}, {self.patch_size}, {self.pos_embed_max_size}")
        if self.pos_embed_type != "sincos":
            raise ConfigError(f"MMDiTConfig.pos_embed_type must be 'sincos' (the reference's 'rope' branch is not "
                              f"implemented there either), got {self.pos_embed_type!r}")
        if self.qk_norm != "rms_norm":
            raise ConfigError(f"MMDiTConfig.qk_norm must be 'rms_norm' (what the released model uses), "
                              f"got {self.qk_norm!r}")
        if self.add_temp_pos_embed and self.temp_pos_embed_type != "rope":
            raise ConfigError(f"MMDiTConfig.temp_pos_embed_type must be 'rope' when add_temp_pos_embed is on (the "
                              f"temporal sincos path is not ported), got {self.temp_pos_embed_type!r}")
        if self.use_temporal_causal and not self.add_temp_pos_embed:
            raise ConfigError("MMDiTConfig.use_temporal_causal needs add_temp_pos_embed=True with "
                              "temp_pos_embed_type='rope': the causal mask uses the temporal RoPE frame ids")
        _check_runtime_options(self)

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def latent_channels(self) -> int:
        return self.in_channels

    @property
    def base_size(self) -> int:
        """The sincos grid's coordinate scale: cell i sits at i / (pos_embed_max_size / base_size)."""
        return self.sample_size // self.patch_size


def _check_runtime_options(config) -> None:
    if config.remat_policy not in REMAT_POLICIES:
        raise ConfigError(f"unknown remat_policy {config.remat_policy!r}; choose one of {sorted(REMAT_POLICIES)}")
    if config.attention_backend not in BACKEND_NAMES:
        raise ConfigError(f"unknown attention_backend {config.attention_backend!r}; choose one of {BACKEND_NAMES}")


def dit_config_to_dict(config: FrozenConfig) -> dict:
    """The JSON form written next to converted weights (round-trips through `families.dit_config_from_dict`)."""
    return {"_class_name": config.CLASS_NAME, **config.to_dict()}
