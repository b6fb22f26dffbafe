"""Check a dataset against the robomimic layout and summarise it.

`validate_dataset` lists every problem it finds (one line each) rather than stopping at the
first, so a user fixes a file in one pass. It reads every array once, so it also catches
truncated chunks that opening the file does not, and it checks every demo against the
first (the same observation keys, per-step shapes and dtypes; the same sim-state width
within one model), because
training stacks demos and a 40x40 frame among 84x84 ones is a crash deep in a data loader.
`require_valid_dataset` is the same check as one error line, run by `train`, `dagger` and
`gail` before they start.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from vismanip.data.hdf5 import demo_names, env_args, image_convention, open_dataset
from vismanip.envs.actions import ACTION_DIM
from vismanip.errors import VismanipError

# What h5py raises for a file whose bytes are damaged past its index (found on access).
DAMAGED = (OSError, RuntimeError, KeyError, ValueError, TypeError)


def validate_dataset(path: str | Path, read_images: bool = True) -> list[str]:
    """Problems found in the dataset at `path`; an empty list means it is valid.

    read_images=False checks image shapes and dtypes but does not read the frames (what a
    training run does before it starts: its loader reads them anyway, and reports a
    damaged chunk in one line when it does).
    """
    try:
        file = open_dataset(path)
    except VismanipError as error:
        return [str(error)]
    with file:
        problems = _check_header(file)
        names = demo_names(file)
        if not names:
            problems.append("data: contains no demo_N groups")
        simulator = for_simulator(file)
        total = 0
        for name in names:
            try:
                demo_problems, steps = _check_demo(
                    file["data"][name], f"data/{name}", read_images, simulator
                )
            except DAMAGED as error:  # a corrupt object header inside the demo
                demo_problems, steps = [f"data/{name}: unreadable ({error})"], 0
            problems += demo_problems
            total += steps
        try:
            problems += _check_consistency(file, names)
        except DAMAGED:
            pass  # the damaged demo is reported above
        declared = file["data"].attrs.get("total")
        if declared is not None and int(declared) != total:
            problems.append(
                f"data.attrs['total'] is {int(declared)} but the demos hold {total} samples"
            )
        try:
            problems += _check_masks(file, set(names))
        except DAMAGED as error:
            problems.append(f"mask: unreadable ({error})")
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


def require_valid_dataset(path: str | Path, read_images: bool = False) -> None:
    """Raise one line naming the first problem of the dataset. Frames are read only with
    `read_images` (for jobs that copy or encode them all before their first result)."""
    problems = validate_dataset(path, read_images)
    if problems:
        first = problems[0] if problems[0].startswith(str(path)) else f"{path}: {problems[0]}"
        more = (
            f" (and {len(problems) - 1} more: vismanip data validate {path})"
            if len(problems) > 1
            else ""
        )
        raise VismanipError(first + more)


def for_simulator(file: h5py.File) -> bool:
    """True for a robosuite dataset (robomimic's env_type 1, ours included): its actions
    must be the 7-D OSC command in [-1, 1] that the simulator executes. Others (imported
    from LeRobot, env_type 0) may have any action width and range."""
    try:
        return int(env_args(file).get("env_type", 1)) == 1
    except (VismanipError, AttributeError, TypeError, ValueError):
        return True  # the header check reports the unreadable env_args


def _check_demo(
    demo: h5py.Group, where: str, read_images: bool, simulator: bool = True
) -> tuple[list[str], int]:
    problems: list[str] = []
    if not isinstance(demo, h5py.Group):
        return [f"{where}: is an array, expected a demo group"], 0
    if "actions" not in demo:
        return [f"{where}: missing 'actions'"], 0
    try:
        actions = demo["actions"][()]
    except OSError as error:
        return [f"{where}/actions: unreadable ({error})"], 0
    steps = len(actions)
    if not np.issubdtype(actions.dtype, np.number):
        return [f"{where}/actions: dtype {actions.dtype}, expected numbers"], 0
    if simulator and (actions.ndim != 2 or actions.shape[1] != ACTION_DIM):
        problems.append(f"{where}/actions: shape {actions.shape}, expected (T, {ACTION_DIM})")
    elif actions.ndim != 2 or actions.shape[1] < 1:
        problems.append(f"{where}/actions: shape {actions.shape}, expected (T, action width)")
    elif not np.all(np.isfinite(actions)):
        bad = np.argwhere(~np.isfinite(actions))[0]
        problems.append(f"{where}/actions: NaN or inf at step {bad[0]}, dimension {bad[1]}")
    elif simulator and len(actions) and np.abs(actions).max() > 1.0 + 1e-6:
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
    if steps == 0:
        problems.append(f"{where}: has no steps")
    if "obs" not in demo or not isinstance(demo["obs"], h5py.Group) or not len(demo["obs"]):
        problems.append(f"{where}: missing 'obs' (no observations)")
    else:
        problems += _check_obs_group(demo["obs"], f"{where}/obs", steps, read_images)
    if "next_obs" in demo:
        problems += _check_obs_group(demo["next_obs"], f"{where}/next_obs", steps, read_images)
        missing = (
            set(demo["obs"]) - set(demo["next_obs"])
            if isinstance(demo.get("obs"), h5py.Group) and isinstance(demo["next_obs"], h5py.Group)
            else set()
        )
        if missing:
            problems.append(f"{where}/next_obs: missing keys {sorted(missing)}")
    return problems, steps


def _check_obs_group(group: h5py.Group, where: str, steps: int, read_images: bool) -> list[str]:
    if not isinstance(group, h5py.Group):
        return [f"{where}: is an array, expected a group of observations"]
    problems = []
    for key in group:
        dataset = group[key]
        image = key.endswith("_image")
        problems += _check_array(dataset, f"{where}/{key}", steps, read=read_images or not image)
        if image and isinstance(dataset, h5py.Dataset):
            if dataset.ndim != 4 or dataset.shape[-1] != 3:
                problems.append(f"{where}/{key}: shape {dataset.shape}, expected (T, H, W, 3)")
            elif dataset.dtype != np.uint8:
                problems.append(f"{where}/{key}: dtype {dataset.dtype}, expected uint8")
        elif isinstance(dataset, h5py.Dataset) and not np.issubdtype(dataset.dtype, np.number):
            problems.append(f"{where}/{key}: dtype {dataset.dtype}, expected numbers")
    return problems


def _check_array(dataset: h5py.Dataset, where: str, steps: int, read: bool = True) -> list[str]:
    if not isinstance(dataset, h5py.Dataset):
        return [f"{where}: is a group, expected an array"]
    if dataset.shape[:1] != (steps,):
        return [f"{where}: length {dataset.shape[0] if dataset.shape else 0}, expected {steps}"]
    if not read:
        return []
    try:
        values = dataset[()]
    except (OSError, ValueError) as error:
        return [f"{where}: unreadable ({error})"]
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
        return [f"{where}: contains NaN or inf"]
    return []


def signature(demo: h5py.Group, states: bool = True) -> dict[str, tuple]:
    """What every demo must share: each observation's per-step shape and dtype, and (with
    `states`) the sim-state width, which only demos of one model share."""
    layout: dict[str, tuple] = {}
    for group in ("obs", "next_obs"):
        if isinstance(demo.get(group), h5py.Group):
            for key, dataset in demo[group].items():
                if isinstance(dataset, h5py.Dataset):
                    layout[f"{group}/{key}"] = (dataset.shape[1:], dataset.dtype)
    if states and isinstance(demo.get("states"), h5py.Dataset):
        layout["states"] = (demo["states"].shape[1:], demo["states"].dtype)
    if isinstance(demo.get("actions"), h5py.Dataset):
        layout["actions"] = (demo["actions"].shape[1:], "numbers")  # any float width agrees
    return layout


def _check_consistency(file: h5py.File, names: list[str]) -> list[str]:
    """Every demo against the first one of the same model (its `model_file`): one line per
    differing demo.

    Observations and actions must agree across all demos: training stacks them. The
    sim-state width must agree only among demos of one model: a state restores with its own
    demo's `model_file` (robomimic), and DAgger appends rounds rolled out in other scenes
    (more objects, more distractors: a wider state) to the demos of one scene.
    """
    demos = [name for name in names if isinstance(file["data"][name], h5py.Group)]
    if len(demos) < 2:
        return []
    model_of = {name: str(file["data"][name].attrs.get("model_file", "")) for name in demos}
    first_of_model: dict[str, str] = {}  # model_file -> the first demo with it
    for name in demos:
        first_of_model.setdefault(model_of[name], name)
    problems = []
    for name in demos[1:]:
        reference_name = first_of_model[model_of[name]]
        same_model = reference_name != name
        if not same_model:
            reference_name = demos[0]
        reference = signature(file["data"][reference_name], states=same_model)
        found = signature(file["data"][name], states=same_model)
        for key in sorted(set(reference) | set(found)):
            where = f"data/{name}/{key}"
            if key not in found:
                problems.append(f"{where}: missing (data/{reference_name} has it)")
            elif key not in reference:
                problems.append(f"{where}: not in data/{reference_name} (demos must match)")
            elif found[key] != reference[key]:
                (shape, dtype), (expected_shape, expected_dtype) = found[key], reference[key]
                problems.append(
                    f"{where}: per-step shape {shape} {dtype}, expected {expected_shape} "
                    f"{expected_dtype} like data/{reference_name}"
                )
            else:
                continue
            break  # one line per demo: the first difference
    return problems


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
        try:
            for name in names:
                demo = file["data"][name]
                for key in ("actions", "obs"):
                    if not isinstance(demo, h5py.Group) or key not in demo:
                        raise VismanipError(
                            f"{path}: data/{name} has no {key!r}; vismanip data validate "
                            f"{path} lists every problem"
                        )
            return _summary(path, file, names)
        except DAMAGED as error:  # damaged on read
            raise VismanipError(
                f"{path}: cannot be read ({error}); vismanip data validate {path} lists "
                "every problem"
            ) from None


def _summary(path: str | Path, file: h5py.File, names: list[str]) -> dict:
    """The summary `dataset_info` prints (may raise h5py's errors on a damaged file)."""
    lengths = [int(file["data"][name]["actions"].shape[0]) for name in names]
    actions = np.concatenate([file["data"][name]["actions"][()] for name in names])
    first = file["data"][names[0]]
    successes = [file["data"][name].attrs.get("success") for name in names]
    known = [bool(s) for s in successes if s is not None]
    args = env_args(file)
    masks = {split: len(file["mask"][split]) for split in file["mask"]} if "mask" in file else {}
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
