"""The text encoders of the two pipeline families: CLIP and T5 in Flax NNX, with their tokenizers."""
