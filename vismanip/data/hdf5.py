"""robomimic's HDF5 layout, written crash-safely and read with clear errors.

Layout (the same as robomimic's, so either project reads the other's files):
    data/                attrs: total (samples), env_args (JSON), image_convention
      demo_N/            attrs: num_samples, model_file (MJCF XML), success, seed, attempt
        actions (T, 7)  rewards (T,)  dones (T,)  states (T, S)
        obs/<key> (T, ...)   next_obs/<key> (T, ...)
    mask/train, mask/valid   demo names (bytes)

Crash safety: every episode goes to its own small file, written under a temporary name
and renamed into place (a rename is atomic), and the final dataset is assembled the same
way. h5py's SWMR mode was the other option, but it cannot add new groups once a file is in
SWMR mode, and each demo is a new group.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from vismanip.errors import VismanipError
from vismanip.files import atomic_write
from vismanip.rollout.episode import Episode

# Our images are upright (row 0 = top, OpenCV). robosuite's default writes them upside
# down ("opengl"); a file without this attribute is assumed to come from there.
IMAGE_CONVENTION = "opencv"
FOREIGN_IMAGE_CONVENTION = "opengl"
_DEMO_NAME = re.compile(r"^demo_(\d+)$")


def write_episode_file(path: Path, episode: Episode, attempt: int, model_xml: str) -> None:
    """One episode as a standalone file with a single group `demo` (atomic on disk)."""
    with atomic_write(path) as temporary, h5py.File(temporary, "w") as file:
        write_demo(file.create_group("demo"), episode, attempt, model_xml)


def write_demo(group: h5py.Group, episode: Episode, attempt: int, model_xml: str) -> None:
    steps = len(episode)
    group.attrs["num_samples"] = steps
    group.attrs["model_file"] = model_xml
    group.attrs["success"] = bool(episode.success)
    group.attrs["seed"] = int(episode.seed)
    group.attrs["attempt"] = int(attempt)
    if episode.randomization:  # replay: env.reset(seed, randomization=events[0]["params"])
        group.attrs["randomization"] = json.dumps(episode.randomization)
    group.create_dataset("actions", data=np.asarray(episode.actions, dtype=np.float64))
    group.create_dataset("rewards", data=np.asarray(episode.rewards, dtype=np.float64))
    group.create_dataset("dones", data=np.asarray(episode.dones, dtype=np.int64))
    if episode.states:  # (sim states exist only for episodes run in our simulator)
        group.create_dataset("states", data=np.asarray(episode.states, dtype=np.float64))
    for key, frames in episode.stacked_obs().items():
        # Images compress ~3x with lzf at negligible CPU cost; low-dim data is left plain.
        options = (
            {"compression": "lzf", "chunks": (1, *frames.shape[1:])} if frames.ndim == 4 else {}
        )
        group.create_dataset(f"obs/{key}", data=frames[:steps], **options)
        group.create_dataset(f"next_obs/{key}", data=frames[1:], **options)


def assemble_dataset(
    out_path: Path,
    demo_sources: Iterable[tuple[Path, str]],
    env_args_json: str,
    attempts: int,
    valid_fraction: float,
    split_seed: int,
    run_metadata: str,
    masks: dict[str, list[str]] | None = None,
) -> int:
    """Copy demos (file, group path) into a new dataset at `out_path`; returns the demo count.

    Demos are renumbered demo_0.. in the order given. `masks` (by the new names) replaces
    the seeded train/valid split when the demos come with their own. The new file is built under a
    temporary name and renamed over `out_path` only when complete, so the previous
    dataset (possibly one of the sources) stays intact until then.
    """
    total = 0
    names = []
    with atomic_write(out_path) as temporary, h5py.File(temporary, "w") as out:
        data = out.create_group("data")
        for index, (source_path, group_path) in enumerate(demo_sources):
            name = f"demo_{index}"
            with h5py.File(source_path, "r") as source:
                source.copy(source[group_path], data, name=name)
            total += int(data[name].attrs["num_samples"])
            names.append(name)
        data.attrs["total"] = total
        data.attrs["env_args"] = env_args_json
        data.attrs["image_convention"] = IMAGE_CONVENTION
        data.attrs["attempts"] = attempts
        data.attrs["vismanip_run"] = run_metadata
        if masks is None:
            train, valid = split_demos(names, valid_fraction, split_seed)
            masks = {"train": train, "valid": valid}
        for split, members in masks.items():
            out.create_dataset(f"mask/{split}", data=np.array(members, dtype="S"))
    return len(names)


def append_demos(path: Path, shards: list[Path], round_name: str, labels: int) -> list[str]:
    """Add the shards' demos to the dataset at `path` as demo_N.., listed in mask/<round_name>
    and in mask/train (validation stays as it was); returns their names.

    The dataset is copied byte for byte, extended and renamed over `path`, so a crash at any
    point leaves either the old file or the new one, and earlier demos are never rewritten.
    """
    names: list[str] = []
    with atomic_write(path) as temporary:
        shutil.copyfile(path, temporary)
        _append(temporary, shards, round_name, labels, names)
    return names


def _append(
    temporary: Path, shards: list[Path], round_name: str, labels: int, names: list[str]
) -> None:
    with h5py.File(temporary, "a") as file:
        data = file["data"]
        start = max((demo_index(name) for name in data), default=-1) + 1
        for offset, shard in enumerate(shards):
            name = f"demo_{start + offset}"
            with h5py.File(shard, "r") as source:
                source.copy(source["demo"], data, name=name)
            data.attrs["total"] = int(data.attrs["total"]) + int(data[name].attrs["num_samples"])
            names.append(name)
        data.attrs[f"labels_{round_name}"] = labels
        train = [*(n.decode() for n in file["mask/train"][()]), *names]
        del file["mask/train"]
        file.create_dataset("mask/train", data=np.array(train, dtype="S"))
        file.create_dataset(f"mask/{round_name}", data=np.array(names, dtype="S"))


def split_demos(names: list[str], valid_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded train/valid split; at least one validation demo once there are two demos."""
    order = np.random.default_rng(seed).permutation(len(names))
    n_valid = int(round(valid_fraction * len(names)))
    if valid_fraction > 0 and len(names) >= 2:
        n_valid = max(n_valid, 1)
    valid = sorted((names[i] for i in order[:n_valid]), key=demo_index)
    train = sorted((names[i] for i in order[n_valid:]), key=demo_index)
    return train, valid


# --------------------------------------------------------------------------- reading


def open_dataset(path: str | Path) -> h5py.File:
    """Open a dataset read-only, turning every way it can be unreadable into one message."""
    path = Path(path)
    if not path.exists():
        raise VismanipError(f"{path}: no such file")
    if path.is_dir():
        raise VismanipError(f"{path}: is a directory, not an HDF5 file")
    if not h5py.is_hdf5(path):
        raise VismanipError(f"{path}: not an HDF5 file (wrong format, or truncated/corrupt)")
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise VismanipError(
            f"{path}: cannot be read as HDF5 (truncated or corrupt?): {error}"
        ) from None
    try:
        readable = "data" in file and isinstance(file["data"], h5py.Group)
        if readable:
            list(file["data"]), dict(file["data"].attrs)  # a damaged index fails here
    except (OSError, RuntimeError, KeyError, ValueError) as error:
        file.close()
        raise VismanipError(
            f"{path}: cannot be read as HDF5 (truncated or corrupt?): {error}"
        ) from None
    if not readable:
        file.close()
        raise VismanipError(f"{path}: no 'data' group; not a robomimic-style dataset")
    return file


def demo_index(name: str) -> int:
    match = _DEMO_NAME.match(name)
    return int(match.group(1)) if match else -1


def demo_names(file: h5py.File) -> list[str]:
    """Demo group names in numeric order (demo_2 before demo_10)."""
    return sorted((name for name in file["data"] if _DEMO_NAME.match(name)), key=demo_index)


def image_convention(file: h5py.File) -> str:
    return str(file["data"].attrs.get("image_convention", FOREIGN_IMAGE_CONVENTION))


def env_args(file: h5py.File) -> dict:
    raw = file["data"].attrs.get("env_args")
    if raw is None:
        raise VismanipError(f"{file.filename}: data has no env_args attribute")
    try:
        return json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        raise VismanipError(f"{file.filename}: data.attrs['env_args'] is not valid JSON") from None


def mask(file: h5py.File, split: str) -> list[str]:
    """Demo names in `mask/<split>` (robomimic's filter keys), decoded to str."""
    key = f"mask/{split}"
    if key not in file:
        raise VismanipError(f"{file.filename}: no {key} (robomimic filter key) in the file")
    return [name.decode() if isinstance(name, bytes) else str(name) for name in file[key][()]]
