"""Policies: plain nn.Modules from raw observations to actions."""

from vismanip.policies.configuration_image_policy import ImagePolicyConfig
from vismanip.policies.modeling_image_policy import ImagePolicy

__all__ = ["ImagePolicy", "ImagePolicyConfig"]
