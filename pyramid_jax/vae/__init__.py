"""Pyramid Flow's causal video VAE."""
