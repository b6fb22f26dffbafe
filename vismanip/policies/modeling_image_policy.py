"""ImagePolicy: a plain nn.Module from raw observations (uint8 images, float proprio) to actions.

It carries its own normalisation statistics as buffers, so a checkpoint is self-contained
and nothing robot-side needs Lightning or the dataset. Evaluation, DAgger, GAIL and export
talk to it only through `reset()`, `select_action(obs)` and `forward(batch)`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vismanip.errors import VismanipError
from vismanip.policies.configuration_image_policy import ImagePolicyConfig

ImageTransform = Callable[[Tensor], Tensor]


def _compact_trunk() -> tuple[nn.Module, int]:
    """4 conv layers, 32-64 channels: ~280 samples/s training on 2 CPU cores at 84x84."""
    layers = nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(32, 32, 3, stride=1, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(64, 64, 3, stride=1, padding=1),
        nn.ReLU(inplace=True),
    )
    return layers, 64


def _resnet18_trunk() -> tuple[nn.Module, int]:
    from torchvision.models import resnet18

    net = resnet18(weights=None)  # no downloads at run time; trained from scratch
    return nn.Sequential(*list(net.children())[:-2]), 512


TRUNKS = {"compact": _compact_trunk, "resnet18": _resnet18_trunk}


class SpatialSoftArgmax(nn.Module):
    """Expected (x, y) in [-1, 1] of each channel's spatial softmax (Levine et al., 2016).

    Hand-written instead of kornia's SpatialSoftArgmax2d (same maths): kornia builds its
    coordinate grid inside forward on the input's device, which tracing and torch.export
    freeze as a CPU constant, so an exported policy would fail on CUDA. Here the grid is a
    (non-persistent) buffer that moves with `.to(device)`.
    """

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(
            torch.linspace(-1.0, 1.0, height), torch.linspace(-1.0, 1.0, width), indexing="ij"
        )
        self.register_buffer("grid", torch.stack([xs.flatten(), ys.flatten()], -1), False)

    grid: Tensor

    def forward(self, maps: Tensor) -> Tensor:
        """(B, K, H, W) score maps -> (B, K, 2) expected coordinates."""
        return torch.softmax(maps.flatten(2), dim=-1) @ self.grid


class CameraEncoder(nn.Module):
    """Conv trunk -> 1x1 conv to keypoint maps -> spatial soft-argmax -> linear features."""

    def __init__(self, encoder: str, num_keypoints: int, feature_dim: int, image_size: int) -> None:
        super().__init__()
        if encoder not in TRUNKS:
            raise VismanipError(f"unknown encoder {encoder!r}; valid: {', '.join(TRUNKS)}")
        self.trunk, channels = TRUNKS[encoder]()
        with torch.no_grad():  # the trunk's output size fixes the soft-argmax grid
            self.trunk.eval()  # (batch-norm: no statistics update from this probe)
            height, width = self.trunk(torch.zeros(1, 3, image_size, image_size)).shape[-2:]
            self.trunk.train()
        self.keypoints = nn.Conv2d(channels, num_keypoints, 1)
        self.soft_argmax = SpatialSoftArgmax(height, width)
        self.project = nn.Linear(2 * num_keypoints, feature_dim)

    def forward(self, images: Tensor) -> Tensor:
        points = self.soft_argmax(self.keypoints(self.trunk(images)))  # (B, K, 2)
        return self.project(points.flatten(1))


class ImagePolicy(nn.Module):
    # buffers (registered in __init__), typed for the checker
    lowdim_mean: Tensor
    lowdim_std: Tensor
    action_low: Tensor
    action_high: Tensor

    def __init__(
        self,
        config: ImagePolicyConfig,
        image_size: int,
        lowdim_dims: dict[str, int],
        action_dim: int = 7,
    ) -> None:
        super().__init__()
        if not config.cameras:
            raise VismanipError("policy.cameras is empty: name at least one camera")
        if config.head not in ("deterministic", "gmm"):
            raise VismanipError(
                f"policy.head must be 'deterministic' or 'gmm', not {config.head!r}"
            )
        if config.loss not in ("l1", "mse"):
            raise VismanipError(f"policy.loss must be 'l1' or 'mse', not {config.loss!r}")
        self.config = config
        self.image_size = image_size
        self.action_dim = action_dim
        self.image_keys = [f"{camera}_image" for camera in config.cameras]
        self.lowdim_keys = list(config.lowdim_keys)
        self.lowdim_dims = {key: lowdim_dims[key] for key in self.lowdim_keys}
        lowdim_size = sum(self.lowdim_dims.values())
        self.encoders = nn.ModuleList(
            CameraEncoder(config.encoder, config.num_keypoints, config.feature_dim, image_size)
            for _ in config.cameras
        )
        self.register_buffer("lowdim_mean", torch.zeros(lowdim_size))
        self.register_buffer("lowdim_std", torch.ones(lowdim_size))
        # The range of the demonstrated actions: exported policies clamp to it.
        self.register_buffer("action_low", -torch.ones(action_dim))
        self.register_buffer("action_high", torch.ones(action_dim))
        layers: list[nn.Module] = []
        width = config.feature_dim * len(config.cameras) + lowdim_size
        for hidden in config.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.trunk = nn.Sequential(*layers)
        modes = config.gmm_modes if config.head == "gmm" else 1
        # GMM: per mode a mean, a log-std and a logit; deterministic: one mean.
        outputs = modes * (2 * action_dim + 1) if config.head == "gmm" else action_dim
        self.head = nn.Linear(width, outputs)

    # ------------------------------------------------------------------ statistics
    def set_normalization(self, lowdim_mean: np.ndarray, lowdim_std: np.ndarray) -> None:
        """Store proprio statistics (from the training split) inside the module."""
        self.lowdim_mean.copy_(torch.as_tensor(lowdim_mean, dtype=torch.float32))
        std = torch.as_tensor(lowdim_std, dtype=torch.float32)
        self.lowdim_std.copy_(torch.where(std < 1e-6, torch.ones_like(std), std))

    def set_action_range(self, low: np.ndarray, high: np.ndarray) -> None:
        """Store the demonstrated action range (from the training split) inside the module."""
        self.action_low.copy_(torch.as_tensor(low, dtype=torch.float32))
        self.action_high.copy_(torch.as_tensor(high, dtype=torch.float32))

    # ------------------------------------------------------------------ model
    def preprocess_images(self, images: Tensor) -> Tensor:
        """uint8 (B, H, W, 3) at any size -> float (B, 3, S, S) in [0, 1] at the trained size.

        Always resamples (an exact copy when the size already matches) so that exported
        graphs have no shape-dependent branch and accept any camera resolution.
        """
        images = images.permute(0, 3, 1, 2).float() / 255.0
        return F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear")

    def encode(
        self, obs: dict[str, Tensor], image_transform: ImageTransform | None = None
    ) -> Tensor:
        """Keypoint features of every camera and normalised proprio, concatenated: what the
        MLP trunk reads. GAIL keeps this part frozen and trains what follows it."""
        parts = []
        for key, encoder in zip(self.image_keys, self.encoders, strict=True):
            images = self.preprocess_images(obs[key])
            if image_transform is not None:
                images = image_transform(images)
            parts.append(encoder(images * 2.0 - 1.0))
        if self.lowdim_keys:
            lowdim = torch.cat([obs[key].float() for key in self.lowdim_keys], dim=-1)
            parts.append((lowdim - self.lowdim_mean) / self.lowdim_std)
        return torch.cat(parts, dim=-1)

    def features(
        self, obs: dict[str, Tensor], image_transform: ImageTransform | None = None
    ) -> Tensor:
        """Fused features of a batch: uint8 (B,H,W,3) images and float proprio vectors."""
        return self.trunk(self.encode(obs, image_transform))

    def action_mean(self, encoding: Tensor) -> Tensor:
        """Deterministic head only: the action before its tanh squash, from `encode`'s output.
        tanh of it is `predict`'s action; GAIL's exploration noise is added before the tanh."""
        return self.head(self.trunk(encoding))

    def _mixture(self, hidden: Tensor) -> torch.distributions.MixtureSameFamily:
        modes, dim = self.config.gmm_modes, self.action_dim
        raw = self.head(hidden).view(-1, modes, 2 * dim + 1)
        means = torch.tanh(raw[..., :dim])
        stds = F.softplus(raw[..., dim : 2 * dim]) + 1e-4
        components = torch.distributions.Independent(torch.distributions.Normal(means, stds), 1)
        weights = torch.distributions.Categorical(logits=raw[..., -1])
        return torch.distributions.MixtureSameFamily(weights, components)

    def predict(self, obs: dict[str, Tensor]) -> Tensor:
        """Actions for a batch; the GMM answers with the mean of its most likely mode."""
        hidden = self.features(obs)
        if self.config.head == "deterministic":
            return torch.tanh(self.head(hidden))
        mixture = self._mixture(hidden)
        best = mixture.mixture_distribution.logits.argmax(dim=-1)  # (B,)
        means = mixture.component_distribution.mean  # (B, modes, action_dim): the locs
        index = best[:, None, None].expand(-1, 1, self.action_dim)
        return means.gather(1, index).squeeze(1)  # gather, not fancy indexing: exportable

    def forward(
        self, batch: dict, image_transform: ImageTransform | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Training loss for a batch {"obs": {...}, "actions": (B, 7)} and what to log."""
        hidden = self.features(batch["obs"], image_transform)
        target = batch["actions"].float()
        if self.config.head == "gmm":
            loss = -self._mixture(hidden).log_prob(target.clamp(-0.999, 0.999)).mean()
        else:
            prediction = torch.tanh(self.head(hidden))
            loss = (
                F.l1_loss(prediction, target)
                if self.config.loss == "l1"
                else F.mse_loss(prediction, target)
            )
        return loss, {"loss": float(loss.detach())}

    # ------------------------------------------------------------------ run time
    def reset(self) -> None:
        """Called between episodes; this policy keeps no history."""

    @torch.no_grad()
    def select_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """One unbatched observation (numpy, as the env returns it) -> one action."""
        was_training = self.training
        self.eval()
        device = self.lowdim_mean.device
        batch = {
            key: torch.as_tensor(np.asarray(obs[key])[None], device=device)
            for key in (*self.image_keys, *self.lowdim_keys)
        }
        action = self.predict(batch)[0].cpu().numpy().astype(np.float64)
        self.train(was_training)
        return action

    def describe(self) -> dict:
        """What it takes to rebuild this module (saved in checkpoints)."""
        from dataclasses import asdict

        return {
            "config": asdict(self.config),
            "image_size": self.image_size,
            "lowdim_dims": self.lowdim_dims,
            "action_dim": self.action_dim,
        }

    @classmethod
    def from_description(cls, description: dict) -> ImagePolicy:
        return cls(
            ImagePolicyConfig(**description["config"]),
            description["image_size"],
            description["lowdim_dims"],
            description["action_dim"],
        )
