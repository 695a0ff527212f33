"""What a LoRA run adapts: the rank, the scale `alpha / rank`, and which DiT linears (`lora.targets`)."""

from __future__ import annotations

import dataclasses
import re

from pyramid_jax.config import ConfigError

# The kernels each target adapts, as regexes over the kernel's path ("transformer_blocks/0/attn/to_q/kernel"):
# `attn` is every attention projection (joint blocks: both streams; single blocks: q, k, v), `mlp` the joint
# blocks' feed-forwards and the single blocks' MLP input and fused output projection. Embedders, AdaLN modulation
# and the final layer are never adapted.
TARGETS: dict[str, tuple[str, ...]] = {
    "attn": (r"(single_)?transformer_blocks/\d+/attn/[a-z_]+/kernel",),
    "mlp": (r"transformer_blocks/\d+/ff(_context)?/proj_(in|out)/kernel",
            r"single_transformer_blocks/\d+/proj_(mlp|out)/kernel"),
}
TARGETS["all"] = TARGETS["attn"] + TARGETS["mlp"]


@dataclasses.dataclass(frozen=True)
class LoraConfig:
    rank: int = 0  # 0: train every weight (no LoRA); r > 0: train rank-r adapters with the base frozen
    alpha: float = 0.0  # the adapters are scaled by alpha / rank; 0 means alpha = rank (scale 1)
    targets: str = "attn"  # attn, mlp or all (see TARGETS)
    base_dtype: str = "float32"  # storage dtype of the frozen base weights ("bfloat16" halves their memory)

    def __post_init__(self):
        if self.rank < 0:
            raise ConfigError(f"lora.rank must be >= 0, got {self.rank}")
        if self.targets not in TARGETS:
            raise ConfigError(f"unknown lora.targets {self.targets!r}; choose one of {sorted(TARGETS)}")
        if self.base_dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"lora.base_dtype must be float32 or bfloat16, got {self.base_dtype!r}")
        if not self.alpha >= 0:
            raise ConfigError(f"lora.alpha must be >= 0, got {self.alpha}")

    @property
    def enabled(self) -> bool:
        return self.rank > 0

    @property
    def scale(self) -> float:
        return (self.alpha or self.rank) / self.rank


def is_target(path: str, targets: str) -> bool:
    """Whether the kernel at `path` ("transformer_blocks/0/attn/to_q/kernel") is adapted under `targets`."""
    return any(re.fullmatch(pattern, path) for pattern in TARGETS[targets])
