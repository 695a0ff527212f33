"""What a LoRA run adapts: the rank, the scale `alpha / rank`, and which DiT linears (`lora.targets`)."""

from __future__ import annotations

import dataclasses
import re

from pyramid_jax.config import ConfigError

# The kernels each target adapts, as regexes over the kernel's path ("transformer_blocks/0/attn/to_q/kernel"):
# `attn` is every attention projection (joint blocks: both streams; single blocks: q, k, v), `mlp` the joint
# blocks' feed-forwards and the single blocks' MLP input and fused output projection, `text` the linears that take
# the text in (the per-token `context_embedder` and the pooled text's `text_embedder`). Targets join with commas
# ("all,text"). The image and timestep embedders, AdaLN modulation and the final layer are never adapted.
TARGETS: dict[str, tuple[str, ...]] = {
    "attn": (r"(single_)?transformer_blocks/\d+/attn/[a-z_]+/kernel",),
    "mlp": (r"transformer_blocks/\d+/ff(_context)?/proj_(in|out)/kernel",
            r"single_transformer_blocks/\d+/proj_(mlp|out)/kernel"),
    "text": (r"context_embedder/kernel", r"time_text_embed/text_embedder/linear_[12]/kernel"),
}
TARGETS["all"] = TARGETS["attn"] + TARGETS["mlp"]


@dataclasses.dataclass(frozen=True)
class LoraConfig:
    rank: int = 0  # 0: train every weight (no LoRA); r > 0: train rank-r adapters with the base frozen
    alpha: float = 0.0  # the adapters are scaled by alpha / rank; 0 means alpha = rank (scale 1)
    targets: str = "attn"  # attn, mlp, text or all (see TARGETS), or several joined by commas
    base_dtype: str = "float32"  # storage dtype of the frozen base weights ("bfloat16" halves their memory)

    def __post_init__(self):
        if self.rank < 0:
            raise ConfigError(f"lora.rank must be >= 0, got {self.rank}")
        unknown = [t for t in self.targets.split(",") if t not in TARGETS]
        if unknown:
            raise ConfigError(f"unknown lora.targets {unknown[0]!r} in {self.targets!r}; choose from {sorted(TARGETS)}, "
                              "joined by commas")
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
    return any(re.fullmatch(pattern, path) for t in targets.split(",") for pattern in TARGETS[t])
