"""Training the causal video VAE (vae_spec.md §5): reconstruction + KL, with LPIPS and a PatchGAN as options."""
