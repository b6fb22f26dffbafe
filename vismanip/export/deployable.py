"""The module a robot runs: raw camera frames and proprio in, a safe action out.

Everything between the sensors and the controller lives inside it (resizing, scaling to
[0, 1], proprio normalisation, clamping to the demonstrated range, the non-finite guard),
so the robot computer needs PyTorch or ONNX Runtime and nothing of ours.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict

import torch
from torch import Tensor, nn

import vismanip
from vismanip.envs.actions import OSC_OUTPUT_MAX
from vismanip.envs.tasks import EnvConfig
from vismanip.policies import ImagePolicy

METADATA_VERSION = 1

ACTION_MEANING = [
    "dx: end-effector x translation",
    "dy: end-effector y translation",
    "dz: end-effector z translation",
    "dax: rotation about x (axis-angle)",
    "day: rotation about y (axis-angle)",
    "daz: rotation about z (axis-angle)",
    "gripper: -1 opens, +1 closes, 0 keeps the fingers where they are",
]


class DeployablePolicy(nn.Module):
    """forward(*camera_images, proprio) -> (action, fallback).

    Inputs, in the order the metadata lists them: one uint8 (B, H, W, 3) RGB tensor per
    camera (upright, any H and W: resized inside) and, when the policy uses proprioception,
    one float (B, P) vector with the low-dim keys concatenated. Outputs: float (B, A)
    actions clamped to the range seen in the demonstrations, and a bool (B,) flag that is
    True where a non-finite input or output was replaced by the hold action (zero deltas:
    keep the pose; gripper 0: keep the fingers).
    """

    hold_action: Tensor  # buffer

    def __init__(self, policy: ImagePolicy) -> None:
        super().__init__()
        self.policy = copy.deepcopy(policy).cpu().eval()
        self.num_cameras = len(self.policy.image_keys)
        self.proprio_dims = [self.policy.lowdim_dims[key] for key in self.policy.lowdim_keys]
        self.register_buffer("hold_action", torch.zeros(self.policy.action_dim))

    def forward(self, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        images = inputs[: self.num_cameras]
        obs = dict(zip(self.policy.image_keys, images, strict=True))
        # uint8 images are always finite; ones_like keeps the traced graph device-free
        ok = torch.ones_like(images[0][:, 0, 0, 0], dtype=torch.bool)
        if self.proprio_dims:
            proprio = inputs[self.num_cameras].float()
            parts = torch.split(proprio, self.proprio_dims, dim=-1)
            obs.update(zip(self.policy.lowdim_keys, parts, strict=True))
            ok = torch.isfinite(proprio).all(dim=-1)
        if self.policy.ensemble is None:  # one action per step (with any history)
            action = self.policy.act(obs)
            ok = ok & torch.isfinite(action).all(dim=-1)
        else:  # a bad chunk is replaced before it enters the ensemble's memory
            chunk = self.policy.chunk_from(self.policy.step_features(obs))
            ok = ok & torch.isfinite(chunk).flatten(1).all(dim=-1)
            chunk = torch.where(ok[:, None, None], chunk, self.hold_action.expand_as(chunk))
            action = self.policy.ensemble(chunk)
        clamped = torch.maximum(
            torch.minimum(action, self.policy.action_high), self.policy.action_low
        )
        safe = torch.where(ok[:, None], clamped, self.hold_action.expand_as(clamped))
        return safe, ~ok

    def reset(self) -> Tensor:
        """Stateful policies: call at each episode's start. Returns the cleared state
        because a traced method must return something."""
        self.policy.reset()
        flags = [
            state.filled.float()
            for state in (self.policy.ensemble, self.policy.history)
            if state is not None
        ]
        return torch.cat(flags) if flags else torch.zeros(0)


def input_names(policy: ImagePolicy) -> list[str]:
    return [*policy.image_keys, *(["proprio"] if policy.lowdim_keys else [])]


def example_inputs(policy: ImagePolicy, batch: int | None = None, size: int | None = None) -> tuple:
    """Random inputs of the right dtypes and shapes (batch 2: export keeps the batch dynamic;
    batch 1 for a stateful policy, which serves one robot)."""
    batch = batch or (1 if policy.stateful else 2)
    size = size or policy.image_size
    generator = torch.Generator().manual_seed(0)
    images = [
        torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=generator)
        for _ in policy.image_keys
    ]
    proprio_size = sum(policy.lowdim_dims.values())
    proprio = policy.lowdim_mean + policy.lowdim_std * torch.randn(
        batch, proprio_size, generator=generator
    )
    return (*images, proprio) if policy.lowdim_keys else tuple(images)


def build_metadata(
    policy: ImagePolicy, env_config: EnvConfig | None, train_config: dict | None, fmt: str
) -> dict:
    """Everything a robot-side program needs to feed the artifact, as plain JSON."""
    digest = (
        hashlib.sha256(json.dumps(train_config, sort_keys=True, default=str).encode()).hexdigest()
        if train_config is not None
        else None
    )
    return {
        "metadata_version": METADATA_VERSION,
        "vismanip_version": vismanip.__version__,
        "format": fmt,
        "inputs": input_names(policy),
        "stateful": policy.stateful,
        "batch": (
            "1: one robot per artifact (the action depends on earlier steps); call reset() at "
            "each episode's start"
            if policy.stateful
            else "any"
        ),
        "outputs": ["action", "fallback"],
        "cameras": list(policy.config.cameras),
        "image_size": policy.image_size,
        "image_format": "uint8 (B, H, W, 3) RGB, row 0 at the top; any H, W (resized inside)",
        "proprio_keys": list(policy.lowdim_keys),
        "proprio_dims": [policy.lowdim_dims[key] for key in policy.lowdim_keys],
        "action_dim": policy.action_dim,
        "action_meaning": ACTION_MEANING[: policy.action_dim],
        "action_units": (
            "robosuite OSC_POSE delta command in [-1, 1]; the controller scales dims 0-5 by "
            "action_scale (metres, radians) per control step"
        ),
        "action_scale": list(OSC_OUTPUT_MAX),
        "action_low": policy.action_low.tolist(),
        "action_high": policy.action_high.tolist(),
        "hold_action": [0.0] * policy.action_dim,
        "control_freq": env_config.control_freq if env_config else None,
        "task": env_config.task if env_config else None,
        "env_config": asdict(env_config) if env_config else None,
        "policy": policy.describe(),
        "train_config_sha256": digest,
    }
