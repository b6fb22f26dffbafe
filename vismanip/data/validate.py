"""Check a dataset against the robomimic layout and summarise it.

`validate_dataset` lists every problem it finds (one line each) rather than stopping at the
first, so a user fixes a file in one pass. It reads every array once, so it also catches
truncated chunks that opening the file does not.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from vismanip.data.hdf5 import demo_names, env_args, image_convention, open_dataset
from vismanip.envs.actions import ACTION_DIM
from vismanip.errors import VismanipError


def validate_dataset(path: str | Path) -> list[str]:
    """Problems found in the dataset at `path`; an empty list means it is valid."""
    try:
        file = open_dataset(path)
    except VismanipError as error:
        return [str(error)]
    with file:
        problems = _check_header(file)
        names = demo_names(file)
        if not names:
            problems.append("data: contains no demo_N groups")
        total = 0
        for name in names:
            demo_problems, steps = _check_demo(file["data"][name], f"data/{name}")
            problems += demo_problems
            total += steps
        declared = file["data"].attrs.get("total")
        if declared is not None and int(declared) != total:
            problems.append(
                f"data.attrs['total'] is {int(declared)} but the demos hold {total} samples"
            )
        problems += _check_masks(file, set(names))
    return problems


def _check_header(file: h5py.File) -> list[str]:
    try:
        args = env_args(file)
    except VismanipError as error:
        return [str(error).split(": ", 1)[-1]]
    problems = []
    for key in ("env_name", "env_kwargs"):
        if key not in args:
            problems.append(f"data.attrs['env_args'] has no {key!r}")
    return problems


def _check_demo(demo: h5py.Group, where: str) -> tuple[list[str], int]:
    problems: list[str] = []
    if "actions" not in demo:
        return [f"{where}: missing 'actions'"], 0
    try:
        actions = demo["actions"][()]
    except OSError as error:
        return [f"{where}/actions: unreadable ({error})"], 0
    steps = len(actions)
    if actions.ndim != 2 or actions.shape[1] != ACTION_DIM:
        problems.append(f"{where}/actions: shape {actions.shape}, expected (T, {ACTION_DIM})")
    elif not np.all(np.isfinite(actions)):
        bad = np.argwhere(~np.isfinite(actions))[0]
        problems.append(f"{where}/actions: NaN or inf at step {bad[0]}, dimension {bad[1]}")
    elif np.abs(actions).max() > 1.0 + 1e-6:
        step = int(np.argmax(np.abs(actions).max(axis=1)))
        problems.append(
            f"{where}/actions: value {actions[step][np.argmax(np.abs(actions[step]))]:.3f} at "
            f"step {step} is outside [-1, 1]"
        )
    num_samples = demo.attrs.get("num_samples")
    if num_samples is not None and int(num_samples) != steps:
        problems.append(f"{where}: num_samples is {int(num_samples)} but actions has {steps} steps")
    for key in ("rewards", "dones", "states"):
        if key in demo:
            problems += _check_array(demo[key], f"{where}/{key}", steps)
    if "obs" not in demo or not len(demo["obs"]):
        problems.append(f"{where}: missing 'obs' (no observations)")
    else:
        problems += _check_obs_group(demo["obs"], f"{where}/obs", steps)
    if "next_obs" in demo:
        problems += _check_obs_group(demo["next_obs"], f"{where}/next_obs", steps)
        missing = set(demo["obs"]) - set(demo["next_obs"]) if "obs" in demo else set()
        if missing:
            problems.append(f"{where}/next_obs: missing keys {sorted(missing)}")
    return problems, steps


def _check_obs_group(group: h5py.Group, where: str, steps: int) -> list[str]:
    problems = []
    for key in group:
        dataset = group[key]
        problems += _check_array(dataset, f"{where}/{key}", steps)
        if key.endswith("_image"):
            if dataset.ndim != 4 or dataset.shape[-1] != 3:
                problems.append(f"{where}/{key}: shape {dataset.shape}, expected (T, H, W, 3)")
            elif dataset.dtype != np.uint8:
                problems.append(f"{where}/{key}: dtype {dataset.dtype}, expected uint8")
    return problems


def _check_array(dataset: h5py.Dataset, where: str, steps: int) -> list[str]:
    if not isinstance(dataset, h5py.Dataset):
        return [f"{where}: is a group, expected an array"]
    if dataset.shape[:1] != (steps,):
        return [f"{where}: length {dataset.shape[0] if dataset.shape else 0}, expected {steps}"]
    try:
        values = dataset[()]
    except OSError as error:
        return [f"{where}: unreadable ({error})"]
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
        return [f"{where}: contains NaN or inf"]
    return []


def _check_masks(file: h5py.File, names: set[str]) -> list[str]:
    if "mask" not in file:
        return []
    problems = []
    seen: dict[str, set[str]] = {}
    for split in file["mask"]:
        listed = {n.decode() if isinstance(n, bytes) else str(n) for n in file["mask"][split][()]}
        unknown = sorted(listed - names)
        if unknown:
            problems.append(f"mask/{split}: names demos that do not exist: {unknown[:3]}")
        seen[split] = listed
    if "train" in seen and "valid" in seen and seen["train"] & seen["valid"]:
        problems.append("mask/train and mask/valid share demos")
    return problems


def dataset_info(path: str | Path) -> dict:
    """What a user wants to know about a dataset at a glance."""
    with open_dataset(path) as file:
        names = demo_names(file)
        if not names:
            raise VismanipError(f"{path}: contains no demo_N groups")
        lengths = [int(file["data"][name]["actions"].shape[0]) for name in names]
        actions = np.concatenate([file["data"][name]["actions"][()] for name in names])
        first = file["data"][names[0]]
        successes = [file["data"][name].attrs.get("success") for name in names]
        known = [bool(s) for s in successes if s is not None]
        args = env_args(file)
        masks = (
            {split: len(file["mask"][split]) for split in file["mask"]} if "mask" in file else {}
        )
        return {
            "path": str(path),
            "env_name": args.get("env_name"),
            "demos": len(names),
            "steps": int(sum(lengths)),
            "episode_length": {
                "min": min(lengths),
                "mean": float(np.mean(lengths)),
                "max": max(lengths),
            },
            "success": {"known": len(known), "successful": int(sum(known))},
            "obs": {
                key: {
                    "shape": list(first["obs"][key].shape[1:]),
                    "dtype": str(first["obs"][key].dtype),
                }
                for key in first["obs"]
            },
            "action_min": actions.min(axis=0).round(3).tolist(),
            "action_max": actions.max(axis=0).round(3).tolist(),
            "image_convention": image_convention(file),
            "masks": masks,
            "attempts": int(file["data"].attrs.get("attempts", len(names))),
        }
