"""The Pyramid Flow DiT families."""
