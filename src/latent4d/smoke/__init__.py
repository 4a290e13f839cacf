"""Smoke family: a tiny SDF MLP on a procedural sphere-and-box scene, proving the trunk end to end."""
