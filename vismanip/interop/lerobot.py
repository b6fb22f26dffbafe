"""LeRobot datasets both ways, through LeRobot's own `LeRobotDataset` (format v3: parquet
tables + one video per camera), so the files are exactly what LeRobot's policies train on.

Export maps robomimic keys to LeRobot's feature names:
  obs/<camera>_image         -> observation.images.<camera>   (video)
  obs/robot0_* (proprio)     -> observation.state              (names "<key>.<i>")
  other low-dim obs          -> observation.environment_state  (names "<key>.<i>")
  actions                    -> action                         (names "action.<i>")
fps is the env's control rate; each episode gets one task string; the robomimic train/valid
masks become LeRobot `splits` (train episodes first, so each split is one range). Our env
settings ride along in `meta/info.json` under "vismanip", so a round trip can still be
evaluated in the simulator.

Import reads any LeRobotDataset: frames decoded to uint8, `observation.state` split back into
keys by the names it declares (names without our "<key>.<i>" pattern stay one `state` key),
actions as they are. LeRobot keeps no observation after an episode's last action, so the
imported `next_obs` repeats the last frame there.

LeRobot itself pins torch < 2.11; we install it with `--no-deps` beside the few packages its
dataset code needs (the `lerobot` extra), which leaves our torch pin alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vismanip.data.hdf5 import (
    IMAGE_CONVENTION,
    assemble_dataset,
    demo_names,
    env_args,
    image_convention,
    mask,
    open_dataset,
    write_episode_file,
)
from vismanip.data.validate import require_valid_dataset
from vismanip.envs.actions import ACTION_DIM
from vismanip.errors import VismanipError
from vismanip.rollout.episode import Episode

IMAGE_PREFIX = "observation.images."
STATE, ENVIRONMENT = "observation.state", "observation.environment_state"
# The task string of an episode, by robosuite env.
TASK_TEXT = {
    "Lift": "lift the cube",
    "ObjectSetLift": "lift the target object",
    "PickPlaceCan": "pick up the can and place it in its bin",
    "ObjectSetPickPlace": "pick up the target object and place it on the green square",
}
_NAMED = re.compile(r"^(?P<key>.+)\.(?P<index>\d+)$")


def _lerobot_dataset() -> Any:
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    except ImportError as error:
        raise VismanipError(
            f"LeRobot is not installed ({error.name} missing): pip install -e '.[lerobot]' "
            "&& pip install --no-deps lerobot==0.4.4 (make install does both)"
        ) from None
    return LeRobotDataset


def _names(key: str, size: int) -> list[str]:
    return [f"{key}.{i}" for i in range(size)]


# --------------------------------------------------------------------------- export
def export_lerobot(path: str | Path, out: str | Path, repo_id: str = "") -> Path:
    """Write the robomimic dataset at `path` as a LeRobotDataset in folder `out`."""
    LeRobotDataset = _lerobot_dataset()
    path, out = Path(path), Path(out)
    require_valid_dataset(path)
    if out.exists():
        raise VismanipError(f"{out} already exists; pick another --out")
    with open_dataset(path) as file:
        names = demo_names(file)
        args = env_args(file)
        flip = image_convention(file) != IMAGE_CONVENTION
        first = file[f"data/{names[0]}/obs"]
        cameras = sorted(key.removesuffix("_image") for key in first if key.endswith("_image"))
        lowdim = {
            key: int(np.prod(first[key].shape[1:])) for key in first if not key.endswith("_image")
        }
        size = first[f"{cameras[0]}_image"].shape[1:] if cameras else None
        splits = _split_order(file, names)
    proprio = [key for key in sorted(lowdim) if key.startswith("robot0_")]
    environment = [key for key in sorted(lowdim) if not key.startswith("robot0_")]
    features: dict[str, dict] = {
        f"{IMAGE_PREFIX}{camera}": {
            "dtype": "video",
            "shape": tuple(size or ()),
            "names": ["height", "width", "channels"],
        }
        for camera in cameras
    }
    for feature, keys in ((STATE, proprio), (ENVIRONMENT, environment)):
        if keys:
            names_ = [n for key in keys for n in _names(key, lowdim[key])]
            features[feature] = {"dtype": "float32", "shape": (len(names_),), "names": names_}
    features["action"] = {
        "dtype": "float32",
        "shape": (ACTION_DIM,),
        "names": _names("action", ACTION_DIM),
    }
    fps = int(args.get("env_kwargs", {}).get("control_freq", 20))
    order = [name for split in splits.values() for name in split]
    _quiet_writers()
    dataset = LeRobotDataset.create(
        repo_id or f"vismanip/{path.stem}",
        fps=fps,
        features=features,
        root=out,
        robot_type="panda",
        use_videos=True,
    )
    try:
        with open_dataset(path) as file:
            for name in order:
                demo = file[f"data/{name}"]
                obs = {key: demo[f"obs/{key}"][()] for key in demo["obs"]}
                task = TASK_TEXT.get(args.get("env_name", ""), str(args.get("env_name")))
                for t in range(int(demo["actions"].shape[0])):
                    frame: dict[str, Any] = {"task": task}
                    for camera in cameras:
                        image = obs[f"{camera}_image"][t]
                        frame[f"{IMAGE_PREFIX}{camera}"] = image[::-1] if flip else image
                    for feature, keys in ((STATE, proprio), (ENVIRONMENT, environment)):
                        if keys:
                            frame[feature] = np.concatenate(
                                [np.ravel(obs[key][t]) for key in keys]
                            ).astype(np.float32)
                    frame["action"] = demo["actions"][t].astype(np.float32)
                    dataset.add_frame(frame)
                dataset.save_episode()
                _quiet_writers()  # LeRobot restores FFmpeg's own logger after each video
        dataset.finalize()
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # no half dataset where a finished one belongs
        raise
    _record_provenance(out, splits, order, args, path)
    return out


def _quiet_writers() -> None:
    """Keep the writers' chatter off the console (~50 lines per episode before): FFmpeg's
    info lines ("Starting second pass: moving the moov atom"), SVT-AV1's banner per video
    (its own `SVT_LOG` setting; 1 = errors only) and Hugging Face datasets' "Map" bar per
    episode. Errors still show."""
    import av
    from datasets.utils.logging import disable_progress_bar

    av.logging.set_level(av.logging.WARNING)
    os.environ.setdefault("SVT_LOG", "1")
    disable_progress_bar()


def _split_order(file: h5py.File, names: list[str]) -> dict[str, list[str]]:
    """Demo names per split, train first (each split becomes one episode range)."""
    if "mask" not in file or "train" not in file["mask"]:
        return {"train": names}
    train = mask(file, "train")
    valid = mask(file, "valid") if "valid" in file["mask"] else []
    rest = [name for name in names if name not in set(train) | set(valid)]
    splits = {"train": train + rest}
    if valid:
        splits["valid"] = valid
    return splits


def _record_provenance(
    out: Path, splits: dict[str, list[str]], order: list[str], args: dict, source: Path
) -> None:
    """LeRobot `splits` as episode ranges, and where each episode came from."""
    info_path = out / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    start, ranges = 0, {}
    for split, members in splits.items():
        ranges[split] = f"{start}:{start + len(members)}"
        start += len(members)
    info["splits"] = ranges
    info["vismanip"] = {"env_args": args, "source": str(source), "demos": order}
    info_path.write_text(json.dumps(info, indent=4))


# --------------------------------------------------------------------------- import
def import_lerobot(folder: str | Path, out: str | Path, repo_id: str = "") -> int:
    """Read the LeRobotDataset in `folder` into our robomimic HDF5 at `out`; returns the
    number of demos written."""
    LeRobotDataset = _lerobot_dataset()
    folder, out = Path(folder), Path(out)
    info_path = folder / "meta" / "info.json"
    if not info_path.is_file():
        raise VismanipError(f"{folder}: no meta/info.json; not a LeRobotDataset (v3) folder")
    if out.exists():
        raise VismanipError(f"{out} already exists; pick another --out")
    info = json.loads(info_path.read_text())
    try:
        dataset = LeRobotDataset(
            repo_id or "local/dataset", root=folder, video_backend="torchcodec"
        )
    except Exception as error:  # LeRobot's loader raises many kinds for a damaged folder
        raise VismanipError(f"{folder}: LeRobot cannot load it: {error}") from None
    features = dataset.meta.features
    cameras = [key for key in features if key.startswith(IMAGE_PREFIX)]
    ours = info.get("vismanip", {})
    args = ours.get("env_args") or {
        "env_name": f"lerobot:{dataset.repo_id}",
        "env_type": 0,
        "env_kwargs": {"control_freq": int(dataset.meta.fps)},
    }
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    shards = []
    episodes = dataset.meta.episodes
    for index in range(dataset.meta.total_episodes):
        start, end = (
            int(episodes["dataset_from_index"][index]),
            int(episodes["dataset_to_index"][index]),
        )
        frames = [dataset[i] for i in range(start, end)]
        episode = Episode(seed=index, success=True)
        for t, frame in enumerate([*frames, frames[-1]]):  # T + 1 observations
            obs = {
                f"{key.removeprefix(IMAGE_PREFIX)}_image": _uint8_image(frame[key])
                for key in cameras
            }
            for feature in (STATE, ENVIRONMENT):
                if feature in features:
                    obs.update(_split_vector(frame[feature].numpy(), features[feature], feature))
            episode._record_obs(obs)
            if t < len(frames):
                episode.actions.append(frame["action"].numpy().astype(np.float64))
                episode.rewards.append(float(t == len(frames) - 1))
                episode.dones.append(t == len(frames) - 1)
        shard = parts / f"episode_{index:06d}.hdf5"
        write_episode_file(shard, episode, index, model_xml="")
        shards.append((shard, "demo"))
    # The export's split ranges as robomimic masks (demo_i is episode i); a dataset without
    # a valid split gets the usual seeded 10%.
    splits = info.get("splits", {})
    masks = (
        {split: _range_names(splits[split]) for split in ("train", "valid")}
        if "train" in splits and "valid" in splits
        else None
    )
    written = assemble_dataset(out, shards, json.dumps(args), len(shards), 0.1, 0, "{}", masks)
    shutil.rmtree(parts)
    return written


def _uint8_image(image: Any) -> np.ndarray:
    """LeRobot's (C, H, W) float in [0, 1] -> our (H, W, C) uint8."""
    array = image.numpy() if hasattr(image, "numpy") else np.asarray(image)
    return np.clip(np.rint(array.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


def _split_vector(vector: np.ndarray, feature: dict, name: str) -> dict[str, np.ndarray]:
    """A state vector back into keys by its declared names ("<key>.<i>"); names of
    another shape keep the vector whole, under the feature's last name part."""
    names = feature.get("names") or []
    if isinstance(names, dict):  # LeRobot also allows {"axes": [...]}
        names = next(iter(names.values()), [])
    matches = [_NAMED.match(str(n)) for n in names]
    if not names or not all(matches) or len(names) != len(vector):
        return {name.split(".")[-1]: vector.astype(np.float64)}
    keys: dict[str, list[float]] = {}
    for match, value in zip(matches, vector, strict=True):
        assert match is not None
        keys.setdefault(match["key"], []).append(float(value))
    return {key: np.asarray(values) for key, values in keys.items()}


def _range_names(span: str) -> list[str]:
    """LeRobot's "start:end" episode range as our demo names."""
    start, end = (int(x) for x in span.split(":"))
    return [f"demo_{i}" for i in range(start, end)]
