"""ImagePolicy: a plain nn.Module from raw observations (uint8 images, float proprio) to actions.

It carries its own normalisation statistics as buffers, so a checkpoint is self-contained
and nothing robot-side needs Lightning or the dataset. Evaluation, DAgger, GAIL and export
talk to it only through `reset()`, `select_action(obs)` and `forward(batch)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

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
HEADS = ("deterministic", "gmm", "chunk")


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


class TemporalEnsemble(nn.Module):
    """ACT's temporal ensembling of action chunks, for one robot (batch 1).

    Every step a new chunk arrives; row j of `chunks` is the chunk predicted j steps ago,
    whose entry j is its action for now. The action taken is their mean weighted by
    exp(decay * j) over the rows predicted since `reset()`. Hand-written (LeRobot's ACT has
    one, but LeRobot's package would move our torch pin): it is kept as buffers and tensor
    ops without Python branches, so a traced TorchScript artifact carries the same state
    and gives the same actions as the eager policy.
    """

    chunks: Tensor
    filled: Tensor
    weights: Tensor
    diagonal: Tensor

    def __init__(self, chunk_size: int, action_dim: int, decay: float) -> None:
        super().__init__()
        # not persistent: run-time state, never part of a checkpoint's weights
        self.register_buffer("chunks", torch.zeros(chunk_size, chunk_size, action_dim), False)
        self.register_buffer("filled", torch.zeros(chunk_size), False)
        self.register_buffer("weights", torch.exp(decay * torch.arange(chunk_size)), False)
        self.register_buffer("diagonal", torch.arange(chunk_size), False)

    def reset(self) -> None:
        """Forget every chunk: the next action comes from the next chunk alone."""
        self.filled.zero_()

    def forward(self, chunk: Tensor) -> Tensor:
        """(1, chunk_size, A) newest chunk -> (1, A) ensembled action for this step."""
        chunks = torch.cat([chunk[:1].detach(), self.chunks[:-1]])  # run-time state: no grad
        filled = torch.cat([torch.ones_like(self.filled[:1]), self.filled[:-1]])
        self.chunks.copy_(chunks)
        self.filled.copy_(filled)
        for_now = chunks[self.diagonal, self.diagonal]  # (chunk_size, A)
        weights = self.weights * filled
        return ((weights[:, None] * for_now).sum(0) / weights.sum())[None]


class ObservationHistory(nn.Module):
    """The encodings of the last `frames` steps, for one robot (batch 1).

    After `reset()` the first step's encoding fills every slot: the same padding as
    training, where a demo's first steps repeat its first observation (robomimic's frame
    stacking). Buffers and branch-free tensor ops, so TorchScript carries it (see
    TemporalEnsemble).
    """

    encodings: Tensor
    filled: Tensor

    def __init__(self, frames: int, width: int) -> None:
        super().__init__()
        self.register_buffer("encodings", torch.zeros(frames, width), False)
        self.register_buffer("filled", torch.zeros(1, dtype=torch.bool), False)

    def reset(self) -> None:
        self.filled.zero_()

    def forward(self, encoding: Tensor) -> Tensor:
        """(1, W) this step's encoding -> (1, frames * W), oldest first."""
        new = encoding[:1].detach()  # run-time state: no grad
        shifted = torch.cat([self.encodings[1:], new])
        encodings = torch.where(self.filled, shifted, new.expand_as(self.encodings))
        self.encodings.copy_(encodings)
        self.filled.fill_(1)
        return encodings.flatten()[None]


def check_known_lowdim_keys(name: str, keys: list[str], lowdim_keys: list[str]) -> None:
    """One line when a setting names proprio keys the policy does not read."""
    if not set(keys) <= set(lowdim_keys):
        raise VismanipError(f"{name} {list(keys)} must be among policy.lowdim_keys {lowdim_keys}")


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
        if config.head not in HEADS:
            raise VismanipError(
                f"policy.head must be one of {', '.join(HEADS)}, not {config.head!r}"
            )
        if config.chunk_size < 1:
            raise VismanipError(f"policy.chunk_size must be >= 1, not {config.chunk_size}")
        if config.frames < 1:
            raise VismanipError(f"policy.frames must be >= 1, not {config.frames}")
        for name in ("raw_lowdim_keys", "lowdim_std_floor_keys"):
            check_known_lowdim_keys(f"policy.{name}", getattr(config, name), config.lowdim_keys)
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
        width = self.frame_width * config.frames
        for hidden in config.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.trunk = nn.Sequential(*layers)
        # GMM: per mode a mean, a log-std and a logit; chunk: one mean per future step;
        # deterministic: one mean.
        outputs = {
            "gmm": config.gmm_modes * (2 * action_dim + 1),
            "chunk": config.chunk_size * action_dim,
            "deterministic": action_dim,
        }[config.head]
        self.head = nn.Linear(width, outputs)
        self.ensemble = (
            TemporalEnsemble(config.chunk_size, action_dim, config.ensemble_decay)
            if config.head == "chunk"
            else None
        )
        self.history = (
            ObservationHistory(config.frames, self.frame_width) if config.frames > 1 else None
        )

    @property
    def frame_width(self) -> int:
        """Numbers per encoded observation: features of every camera, then proprio."""
        return self.config.feature_dim * len(self.image_keys) + sum(self.lowdim_dims.values())

    @property
    def stateful(self) -> bool:
        """True when an action depends on earlier steps (chunk head, observation history):
        then `reset()` must be called at each episode's start, and a robot runs it with
        batch 1."""
        return self.ensemble is not None or self.history is not None

    # ------------------------------------------------------------------ statistics
    def set_normalization(self, lowdim_mean: np.ndarray, lowdim_std: np.ndarray) -> None:
        """Store proprio statistics (from the training split) inside the module."""
        self.lowdim_mean.copy_(torch.as_tensor(lowdim_mean, dtype=torch.float32))
        std = torch.as_tensor(lowdim_std, dtype=torch.float32)
        self.lowdim_std.copy_(torch.where(std < 1e-6, torch.ones_like(std), std))
        for key, span in self._lowdim_spans().items():
            if key in self.config.raw_lowdim_keys:
                self.lowdim_mean[span] = 0.0
                self.lowdim_std[span] = 1.0
        self._apply_std_floor()

    def floor_lowdim_std(self, floor: float, keys: list[str]) -> None:
        """Floor a trained policy's stored proprio std, as `policy.lowdim_std_floor` and
        `policy.lowdim_std_floor_keys` would have in training (its config records them),
        so that GAIL can start from a BC policy trained without the floor."""
        check_known_lowdim_keys("proprio keys to floor", keys, self.lowdim_keys)
        self.config = replace(self.config, lowdim_std_floor=floor, lowdim_std_floor_keys=keys)
        self._apply_std_floor()

    def _apply_std_floor(self) -> None:
        floored = self.config.lowdim_std_floor_keys or self.lowdim_keys
        for key, span in self._lowdim_spans().items():
            if key in floored and key not in self.config.raw_lowdim_keys:
                self.lowdim_std[span] = self.lowdim_std[span].clamp(
                    min=self.config.lowdim_std_floor
                )

    def _lowdim_spans(self) -> dict[str, slice]:
        """Where each proprio key sits in the concatenated proprio vector."""
        spans, start = {}, 0
        for key, dim in self.lowdim_dims.items():
            spans[key] = slice(start, start + dim)
            start += dim
        return spans

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

    def encode_frame(
        self, obs: dict[str, Tensor], image_transform: ImageTransform | None = None
    ) -> Tensor:
        """One observation per row -> keypoint features of every camera and normalised
        proprio, concatenated (B, frame width)."""
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

    def encode(
        self, obs: dict[str, Tensor], image_transform: ImageTransform | None = None
    ) -> Tensor:
        """What the MLP trunk reads: `encode_frame` of each observation, or with
        `frames` > 1 of each of the (B, frames, ...) stacked ones, concatenated oldest
        first. GAIL keeps this part frozen and trains what follows it."""
        frames = self.config.frames
        if frames == 1:
            return self.encode_frame(obs, image_transform)
        flat = {key: value.flatten(0, 1) for key, value in obs.items()}  # (B * frames, ...)
        return self.encode_frame(flat, image_transform).view(-1, frames * self.frame_width)

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

    def chunk_from(self, hidden: Tensor) -> Tensor:
        """Chunk head: (B, chunk_size, A) actions for this step and the next ones."""
        return torch.tanh(self.head(hidden)).view(-1, self.config.chunk_size, self.action_dim)

    def action_from(self, hidden: Tensor) -> Tensor:
        """(B, A) actions from the trunk's output; the GMM answers with the mean of its most
        likely mode, the chunk head with its chunk's first action."""
        if self.config.head == "deterministic":
            return torch.tanh(self.head(hidden))
        if self.config.head == "chunk":
            return self.chunk_from(hidden)[:, 0]
        mixture = self._mixture(hidden)
        best = mixture.mixture_distribution.logits.argmax(dim=-1)  # (B,)
        means = mixture.component_distribution.mean  # (B, modes, action_dim): the locs
        index = best[:, None, None].expand(-1, 1, self.action_dim)
        return means.gather(1, index).squeeze(1)  # gather, not fancy indexing: exportable

    def predict(self, obs: dict[str, Tensor]) -> Tensor:
        """Actions for a batch, without run-time state (with `frames` > 1 the observations
        come stacked, (B, frames, ...)); `act` is what runs an episode."""
        return self.action_from(self.features(obs))

    def predict_chunk(self, obs: dict[str, Tensor]) -> Tensor:
        """Chunk head: (B, chunk_size, A) for a batch, without run-time state."""
        return self.chunk_from(self.features(obs))

    def step_features(self, obs: dict[str, Tensor]) -> Tensor:
        """One step of one robot (batch 1, one observation): the trunk's output, with the
        history of earlier steps when `frames` > 1."""
        encoding = self.encode_frame(obs)
        if self.history is not None:
            encoding = self.history(encoding)
        return self.trunk(encoding)

    def act(self, obs: dict[str, Tensor]) -> Tensor:
        """The action to execute now for one robot's step (batch 1 when stateful; a policy
        without state takes any batch and equals `predict`): from the history of
        observations and, for the chunk head, the temporal ensemble of earlier chunks."""
        hidden = self.step_features(obs)
        if self.ensemble is None:
            return self.action_from(hidden)
        return self.ensemble(self.chunk_from(hidden))

    def forward(
        self, batch: dict, image_transform: ImageTransform | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Training loss for a batch {"obs": {...}, "actions": (B, 7)} and what to log; the
        chunk head reads "actions" (B, chunk_size, 7) and "action_mask" (B, chunk_size),
        False past the demo's end, where the loss ignores the padded targets."""
        hidden = self.features(batch["obs"], image_transform)
        target = batch["actions"].float()
        if self.config.head == "gmm":
            loss = -self._mixture(hidden).log_prob(target.clamp(-0.999, 0.999)).mean()
            return loss, {"loss": float(loss.detach())}
        prediction = torch.tanh(self.head(hidden)).view(target.shape)
        error = (
            (prediction - target).abs() if self.config.loss == "l1" else (prediction - target) ** 2
        )
        if self.config.head == "chunk":
            mask = batch["action_mask"].to(error.dtype)[..., None].expand_as(error)
            loss = (error * mask).sum() / mask.sum()
        else:
            loss = error.mean()
        return loss, {"loss": float(loss.detach())}

    # ------------------------------------------------------------------ run time
    def reset(self) -> None:
        """Called at each episode's start: forgets the last one's chunks and observations."""
        if self.ensemble is not None:
            self.ensemble.reset()
        if self.history is not None:
            self.history.reset()

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
        action = self.act(batch)[0].cpu().numpy().astype(np.float64)
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

    @staticmethod
    def complete_description(description: dict) -> dict:
        """A stored description with today's defaults for keys added since it was saved,
        so it compares equal to `describe()` of the same architecture."""
        from dataclasses import asdict

        return {**description, "config": asdict(ImagePolicyConfig(**description["config"]))}

    @classmethod
    def from_description(cls, description: dict) -> ImagePolicy:
        return cls(
            ImagePolicyConfig(**description["config"]),
            description["image_size"],
            description["lowdim_dims"],
            description["action_dim"],
        )
