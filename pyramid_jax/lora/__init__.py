"""Low-rank adapters (LoRA) for the DiT: training only them, saving them, applying or merging them."""

from pyramid_jax.lora.adapters import apply_adapters, init_adapters
from pyramid_jax.lora.config import LoraConfig
from pyramid_jax.lora.files import LoraError, check_lora, load_lora, merge_loras, save_lora

__all__ = ["LoraConfig", "LoraError", "apply_adapters", "check_lora", "init_adapters", "load_lora", "merge_loras",
           "save_lora"]
