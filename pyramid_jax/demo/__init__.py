"""The embedded demo: a procedural moving-shapes dataset and the small models trained on it."""
