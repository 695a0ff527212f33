"""DiT training: the pyramidal flow-matching objective, AR units, the sharded jitted train step, LoRA, the run."""
