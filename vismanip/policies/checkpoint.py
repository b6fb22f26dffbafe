"""Save and load a policy together with the scene it was trained in: weights and plain
metadata only, never code.

A training checkpoint is Lightning's `.ckpt` with a `vismanip` entry (the policy's
description, its EnvConfig and the train config, all plain JSON-like values). It is read
with `torch.load(weights_only=True)`, which refuses any pickled object that is not a
tensor or a plain container: a crafted file gets one error line and runs nothing.
`load_policy` also accepts exported artifacts (.pt, .pt2, .onnx), so every command that
takes "a policy" takes either.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vismanip.envs.actions import ACTION_DIM
from vismanip.envs.tasks import EnvConfig, task_spec
from vismanip.errors import VismanipError
from vismanip.files import atomic_write
from vismanip.policies.artifact import FORMATS, ExportedArtifact, ExportedPolicyActor
from vismanip.policies.modeling_image_policy import ImagePolicy

METADATA_KEY = "vismanip"  # the entry our LightningModule adds to each checkpoint
STATE_PREFIX = "policy."  # the policy's weights inside Lightning's state_dict


@dataclass
class PolicyWeights:
    """An ImagePolicy as plain data: how to build it and its tensors (cheap to pickle)."""

    description: dict
    state: dict[str, Tensor]

    @classmethod
    def of(cls, policy: ImagePolicy) -> PolicyWeights:
        state = {key: value.detach().cpu().clone() for key, value in policy.state_dict().items()}
        return cls(policy.describe(), state)

    def build(self) -> ImagePolicy:
        policy = ImagePolicy.from_description(self.description)
        self.load_into(policy)
        return policy.eval()

    def load_into(self, policy: ImagePolicy) -> None:
        """Load weights and buffers; checkpoints from before the action range was stored
        keep the [-1, 1] default."""
        missing, unexpected = policy.load_state_dict(self.state, strict=False)
        if unexpected or set(missing) - {"action_low", "action_high"}:
            policy.load_state_dict(self.state)  # strict: raises with the full list of mismatches


def checkpoint_metadata(
    policy: ImagePolicy, env_config: EnvConfig | None, train_config: Any
) -> dict:
    """The `vismanip` entry of a checkpoint: enough to rebuild the policy and its env
    without the training code or the dataset. `train_config`: a config dataclass or dict
    (its `data` is what `export` parity-checks on)."""
    if train_config is not None and not isinstance(train_config, dict):
        train_config = asdict(train_config)
    return {
        "policy": policy.describe(),
        "env_config": asdict(env_config) if env_config else None,
        "train_config": train_config,
    }


def save_policy(
    path: str | Path, policy: ImagePolicy, env_config: EnvConfig | None, train_config: Any
) -> None:
    """A checkpoint `load_policy` reads, for policies trained outside Lightning (GAIL)."""
    state = {STATE_PREFIX + key: value.detach().cpu() for key, value in policy.state_dict().items()}
    save_atomic(
        {"state_dict": state, METADATA_KEY: checkpoint_metadata(policy, env_config, train_config)},
        path,
    )


def save_atomic(value: dict, path: str | Path) -> None:
    """torch.save to a temporary file, then rename: a kill never leaves half a file."""
    with atomic_write(path) as temporary:
        torch.save(value, temporary)


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents as tensors and plain containers; one error line otherwise."""
    path = Path(path)
    if not path.is_file():
        raise VismanipError(f"{path}: no such checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's safe unpickler names the global it refused to import ("GLOBAL posix.system")
        refused = re.search(r"GLOBAL (\S+)", str(error))
        if refused:
            raise VismanipError(
                f"{path}: refused, the file asks to load {refused.group(1)}, not only weights "
                "and plain metadata (not a vismanip checkpoint, or one that carries code); "
                "nothing was run"
            ) from None
        raise VismanipError(f"{path}: not a readable checkpoint (UnpicklingError)") from None
    except Exception as error:  # torch raises many types for a damaged file
        raise VismanipError(f"{path}: not a readable checkpoint ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict) or METADATA_KEY not in checkpoint:
        raise VismanipError(f"{path}: not a vismanip training checkpoint")
    return checkpoint


@dataclass
class LoadedPolicy:
    """A policy from a file and the scene it belongs in.

    source: what a rollout worker builds the actor from (weights, or an artifact loader).
    description: ImagePolicy.describe() (cameras, image size, architecture).
    env_config: the env it was trained for (None if trained without one).
    train_config: the training run's resolved config (checkpoints only).
    """

    path: Path
    source: PolicyWeights | partial
    description: dict
    env_config: EnvConfig | None
    train_config: dict | None = None

    @property
    def weights(self) -> PolicyWeights:
        if not isinstance(self.source, PolicyWeights):
            raise VismanipError(f"{self.path}: an exported artifact; this needs a .ckpt")
        return self.source

    def env_for(self, task: str = "") -> EnvConfig:
        """The env this policy runs in (optionally another task), with its cameras and size."""
        width = int(self.description.get("action_dim", ACTION_DIM))
        if width != ACTION_DIM:
            raise VismanipError(
                f"{self.path}: the policy outputs {width}-D actions (trained on data from "
                f"elsewhere); the simulator executes the {ACTION_DIM}-D OSC command, so it "
                "cannot be evaluated here"
            )
        if self.env_config is None and not task:
            raise VismanipError(f"{self.path}: trained without a task; pass --task")
        env = self.env_config or EnvConfig()
        if task:
            task_spec(task)
            env = replace(env, task=task)
        return replace(
            env,
            cameras=list(self.description["config"]["cameras"]),
            image_size=self.description["image_size"],
        )


def load_policy(path: str | Path) -> LoadedPolicy:
    """A training checkpoint (.ckpt) or an exported artifact (.pt, .pt2, .onnx)."""
    path = Path(path)
    if path.suffix in FORMATS.values():
        metadata = ExportedArtifact(path).metadata
        stored_env = metadata.get("env_config")
        return LoadedPolicy(
            path,
            partial(ExportedPolicyActor, str(path.resolve())),
            ImagePolicy.complete_description(metadata["policy"]),
            EnvConfig.from_dict(stored_env) if stored_env else None,
        )
    checkpoint = read_checkpoint(path)
    meta = checkpoint[METADATA_KEY]
    state = {
        key[len(STATE_PREFIX) :]: value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(STATE_PREFIX)
    }
    stored_env = meta.get("env_config")
    description = ImagePolicy.complete_description(meta["policy"])
    return LoadedPolicy(
        path,
        PolicyWeights(description, state),
        description,
        EnvConfig.from_dict(stored_env) if stored_env else None,
        meta.get("train_config"),
    )


def trained_epochs(path: str | Path) -> int:
    """Epochs a Lightning checkpoint has finished (what `--resume` continues from)."""
    return int(read_checkpoint(path)["epoch"]) + 1
