"""The expert's side of GAIL: demos as DAC transitions in the learner's input spaces.

Each demo's observations are encoded once with the policy's frozen encoder (the actor's
input, for the BC term) and turned into the privileged state, those features or small
frames (the discriminator's input), so no full-size image is touched again in training.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from tensordict import TensorDict

from vismanip.algos.gail.rollouts import disc_frames, privileged_state, state_keys
from vismanip.algos.gail.transitions import transitions_td
from vismanip.data.datamodule import DemoDataset
from vismanip.data.hdf5 import IMAGE_CONVENTION, demo_names, image_convention, open_dataset
from vismanip.data.validate import require_valid_dataset
from vismanip.envs.tasks import task_spec
from vismanip.errors import VismanipError
from vismanip.policies import ImagePolicy
from vismanip.policies.modeling_image_policy import ImageTransform

ENCODE_BATCH = 256


def check_demos(path: str, policy: ImagePolicy, task: str, disc_input: str) -> None:
    """One line for demos that cannot serve this run: missing cameras or keys, another env."""
    object_key = task_spec(task).object_key
    require_valid_dataset(path, read_images=True)  # every frame is encoded next
    with open_dataset(path) as file:
        names = demo_names(file)
        obs = file[f"data/{names[0]}/obs"]
        needed = [*policy.image_keys, *policy.lowdim_keys]
        if disc_input == "state":
            needed += state_keys(object_key)
        missing = [key for key in needed if key not in obs]
        if missing:
            hint = (
                "; disc.input=state reads the sim state, try disc.input=features or image"
                if missing[0] not in policy.image_keys + policy.lowdim_keys
                else ""
            )
            raise VismanipError(f"{path}: demos have no obs/{missing[0]} ({task}){hint}")
        env_args = json.loads(file["data"].attrs.get("env_args", "{}"))
    demo_env = env_args.get("env_name", "")
    task_env = task_spec(task).env_name
    if demo_env and demo_env.removeprefix("ObjectSet") != task_env.removeprefix("ObjectSet"):
        raise VismanipError(
            f"{path}: demos of {demo_env}, but task {task!r} runs {task_env}; "
            "pass demos of the same task"
        )


@torch.no_grad()
def expert_transitions(
    path: str,
    policy: ImagePolicy,
    task: str,
    disc_input: str,
    frame_size: int = 0,
    policy_inputs: bool = False,
    augmented_copies: int = 0,
    augment: ImageTransform | None = None,
) -> TensorDict:
    """Every demo of `path` as transitions (features, observation, action, next ...; with
    `frame_size`, D's frames at that size; with `policy_inputs`, the policy's own inputs
    for `learner.end_to_end`); `check_demos` first. With `augmented_copies` k > 0, each
    transition appears k times, its features (the actor's input) encoded from frames
    passed through `augment` anew each time; D's observation stays the plain frames' (a D
    on features must not tell demos from rollouts by the augmentation)."""
    object_key = task_spec(task).object_key
    keys = [*policy.image_keys, *policy.lowdim_keys]
    needed_state = state_keys(object_key) if disc_input == "state" else []
    with open_dataset(path) as file:
        names = demo_names(file)
        flip = image_convention(file) != IMAGE_CONVENTION
        last_obs = [
            {key: file[f"data/{name}/next_obs/{key}"][-1] for key in {*keys, *needed_state}}
            for name in names
        ]
        states = [
            {key: file[f"data/{name}/obs/{key}"][()] for key in needed_state}
            if disc_input == "state"
            else {}
            for name in names
        ]
        success = [bool(file[f"data/{name}"].attrs.get("success", True)) for name in names]
        rewards = [file[f"data/{name}/rewards"][()] for name in names]
    dataset = DemoDataset(path, names, keys, cache_bytes=0)
    episodes = []
    start = 0
    for i, steps in enumerate(dataset.lengths):
        batch = dataset.__getitems__(list(range(start, start + steps)))
        start += steps
        final = {
            key: torch.as_tensor(
                np.ascontiguousarray(value[::-1] if flip and key.endswith("_image") else value)
            )[None]
            for key, value in last_obs[i].items()
            if key in keys
        }
        frames = None
        if frame_size:
            frames = torch.cat(
                [
                    disc_frames([batch["obs"][key] for key in policy.image_keys], frame_size),
                    disc_frames([final[key] for key in policy.image_keys], frame_size),
                ]
            ).numpy()
        policy_obs = None
        if policy_inputs:
            policy_obs = {  # (as the rollouts send them: uint8 images, float32 proprio)
                key: torch.cat([batch["obs"][key], final[key].to(batch["obs"][key].dtype)])
                .to(torch.uint8 if key in policy.image_keys else torch.float32)
                .numpy()
                for key in keys
            }
        if disc_input == "state":
            observations = np.concatenate(
                [
                    privileged_state(states[i], object_key),
                    privileged_state(last_obs[i], object_key)[None],
                ]
            )
        else:  # D on features reads the plain frames' features, never an augmented copy
            observations = _encode(policy, batch["obs"], final)
        if augmented_copies:
            actor_inputs = [
                _encode(policy, batch["obs"], final, augment) for _ in range(augmented_copies)
            ]
        elif disc_input == "state":
            actor_inputs = [_encode(policy, batch["obs"], final)]
        else:  # D's features are the actor's input
            actor_inputs = [observations]
        success_step = np.zeros(steps, dtype=bool)
        success_step[-1] = success[i]
        for actor_input in actor_inputs:
            episodes.append(
                transitions_td(
                    actor_input,
                    observations.astype(np.float32),
                    batch["actions"].numpy(),
                    success_step,
                    np.asarray(rewards[i], dtype=np.float32),
                    frames,
                    policy_obs,
                )
            )
    return torch.cat(episodes)


def _encode(
    policy: ImagePolicy,
    obs: dict[str, torch.Tensor],
    final: dict[str, torch.Tensor],
    augment: ImageTransform | None = None,
) -> np.ndarray:
    """One demo's T + 1 observations (its steps' and the final one) through the frozen
    encoder, in batches, with the images passed through `augment` if given."""
    steps = len(next(iter(obs.values())))
    parts = [
        policy.encode({k: v[j : j + ENCODE_BATCH] for k, v in obs.items()}, augment)
        for j in range(0, steps, ENCODE_BATCH)
    ]
    return torch.cat([*parts, policy.encode(final, augment)]).numpy()
