"""Sim-to-real: image augmentation (and, next, domain randomization of the simulator)."""

from vismanip.sim2real.augmentation import (
    AugmentationConfig,
    KorniaAugment,
    albumentations_pipeline,
    kornia_pipeline,
)

__all__ = ["AugmentationConfig", "KorniaAugment", "albumentations_pipeline", "kornia_pipeline"]
