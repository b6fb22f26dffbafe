"""Sim-to-real: domain randomization of the simulated scene (`randomization`) and image
augmentation for training (`augmentation`).

The submodules are imported directly: environments need `randomization` without paying
for kornia/albumentations (`augmentation`) in every simulator worker.
"""
