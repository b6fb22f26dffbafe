"""Demos as training batches: a uint8 in-memory cache, robomimic's masks, a Lightning DataModule.

Images stay uint8 in memory (4x smaller than float) up to `cache_gb`; demos beyond the cap
are read from the HDF5 file when sampled. Batches are fetched with one fancy-indexing call
per key (`__getitems__`), not per sample, which keeps the loader far from the bottleneck on
a CPU. Files in robosuite's upside-down image convention are flipped to upright here, so
every consumer sees one orientation. `data=` may name several files (comma-separated or a
glob): they train as one dataset, each file's masks choosing its splits.
"""

from __future__ import annotations

import glob
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vismanip.data.hdf5 import IMAGE_CONVENTION, demo_names, image_convention, mask, open_dataset
from vismanip.errors import VismanipError

# Augments one sample's images {key: uint8 (H, W, 3)} (albumentations, in the loader).
SampleTransform = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class LoaderConfig:
    """How demos are served.

    batch_size: samples per training step.
    cache_gb: demos are kept in memory (uint8) up to this size (GB, all files together);
      the rest is read from disk for every batch, several times slower.
    num_workers: loader processes (0: batches are gathered in the training process). On 2
      CPU cores keep 0: workers compete with the training step for the same cores. On a
      lent H200, 8 made `vismanip train` ~1.2-1.4x faster per epoch (README, "Measured on
      a GPU"); measure on the machine at hand.
    train_mask / valid_mask: robomimic filter keys under mask/ ("" for no validation).
    """

    batch_size: int = 64
    cache_gb: float = 4.0
    num_workers: int = 0
    train_mask: str = "train"
    valid_mask: str = "valid"

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise VismanipError(f"loader.num_workers must be >= 0, not {self.num_workers}")


class DemoDataset(Dataset):
    """(obs, action) samples of the named demos; images uint8 (H, W, 3), upright.

    action_horizon > 1 (action chunking): each sample's target is the next `action_horizon`
    actions of its demo, (k, A), with "action_mask" (k,) False where they run past the
    demo's end (there the last action is repeated and the loss ignores it, as in ACT).
    obs_history > 1 (observation history): each obs key holds the last `obs_history`
    observations, (n, ...) oldest first; a demo's first steps repeat its first one.
    """

    def __init__(
        self,
        path: str | Path,
        demos: list[str],
        obs_keys: list[str],
        cache_bytes: float,
        transform: SampleTransform | None = None,
        action_horizon: int = 1,
        obs_history: int = 1,
    ) -> None:
        self.path = Path(path)
        self.obs_keys = list(obs_keys)
        self.action_horizon = action_horizon
        self.obs_history = obs_history
        self.transform = transform  # per-sample image augmentation (albumentations), or None
        self._file: h5py.File | None = None
        with open_dataset(self.path) as file:
            self.flip = image_convention(file) != IMAGE_CONVENTION
            missing = (
                [key for key in self.obs_keys if f"data/{demos[0]}/obs/{key}" not in file]
                if demos
                else []
            )
            if missing:
                available = sorted(file[f"data/{demos[0]}/obs"])
                raise VismanipError(
                    f"{self.path}: no obs key {missing[0]!r}; available: {', '.join(available)}"
                )
            self.lengths = [int(file[f"data/{name}/actions"].shape[0]) for name in demos]
            self.demos = list(demos)
            self.index = (
                np.concatenate(
                    [np.stack([np.full(n, i), np.arange(n)], 1) for i, n in enumerate(self.lengths)]
                )
                if demos
                else np.zeros((0, 2), dtype=np.int64)
            )
            sizes = [
                sum(file[f"data/{name}/obs/{key}"].nbytes for key in self.obs_keys)
                for name in self.demos
            ]
            self.cache: dict[int, dict[str, np.ndarray]] = {}
            used = 0.0
            for i, (name, size) in enumerate(zip(self.demos, sizes, strict=True)):
                if used + size > cache_bytes:
                    break
                self.cache[i] = self._read_demo(file, name)
                used += size
        self.cached_bytes = used
        self.total_bytes = float(sum(sizes))

    def _read_demo(self, file: h5py.File, name: str) -> dict[str, np.ndarray]:
        try:
            demo = {key: file[f"data/{name}/obs/{key}"][()] for key in self.obs_keys}
            demo["actions"] = file[f"data/{name}/actions"][()].astype(np.float32)
        except (OSError, KeyError, ValueError) as error:  # a damaged chunk, found on read
            raise VismanipError(
                f"{self.path}: data/{name} cannot be read (truncated or corrupt?): {error}"
            ) from None
        if not np.all(np.isfinite(demo["actions"])):
            raise VismanipError(f"{self.path}: data/{name}/actions contains NaN or inf")
        for key in self.obs_keys:
            if key.endswith("_image") and self.flip:
                demo[key] = np.ascontiguousarray(demo[key][:, ::-1])
        return demo

    def _demo(self, i: int) -> dict[str, np.ndarray]:
        if i in self.cache:
            return self.cache[i]
        if self._file is None:  # opened lazily: one handle per loader process
            self._file = h5py.File(self.path, "r")
        return self._read_demo(self._file, self.demos[i])

    def __len__(self) -> int:
        return len(self.index)

    def start_in_worker(self, seed: int) -> None:
        """In a fresh loader process: drop the HDF5 handle inherited from the parent (opened
        again on the next lazy read) and draw augmentations from `seed`."""
        self._file = None
        if self.transform is not None and hasattr(self.transform, "reseed"):
            self.transform.reseed(seed)

    def __getitem__(self, item: int) -> dict:
        """One sample, as a batch of one (the loader always fetches whole batches)."""
        return self.__getitems__([item])

    def __getitems__(self, items: list[int]) -> dict:
        """A whole batch at once: {"obs": {key: tensor}, "actions": tensor} (+ "action_mask"
        with an action horizon)."""
        rows = self.index[np.asarray(items)]
        chunked = self.action_horizon > 1
        keys = (*self.obs_keys, "actions", *(["action_mask"] if chunked else []))
        batch: dict[str, list[np.ndarray]] = {key: [] for key in keys}
        for demo_i in np.unique(rows[:, 0]):
            steps = rows[rows[:, 0] == demo_i, 1]
            demo = self._demo(int(demo_i))
            # (n,) steps, or (n, history) steps oldest first, clamped to the demo's start
            seen = (
                np.maximum(steps[:, None] + np.arange(1 - self.obs_history, 1), 0)
                if self.obs_history > 1
                else steps
            )
            for key in self.obs_keys:
                batch[key].append(demo[key][seen])
            if chunked:
                ahead = steps[:, None] + np.arange(self.action_horizon)  # (n, k)
                length = len(demo["actions"])
                batch["actions"].append(demo["actions"][np.minimum(ahead, length - 1)])
                batch["action_mask"].append(ahead < length)
            else:
                batch["actions"].append(demo["actions"][steps])
        order = np.argsort(np.argsort(rows[:, 0], kind="stable"), kind="stable")
        stacked = {
            key: torch.from_numpy(np.concatenate(parts)[order]) for key, parts in batch.items()
        }
        actions = stacked.pop("actions")
        action_mask = stacked.pop("action_mask", None)
        if self.transform is not None:
            image_keys = [key for key in self.obs_keys if key.endswith("_image")]
            for row in range(len(actions)):
                for frame in range(self.obs_history):  # each frame of a history draws anew
                    where = (row, frame) if self.obs_history > 1 else (row,)
                    sample = {key: stacked[key][where].numpy() for key in image_keys}
                    for key, image in self.transform(sample).items():
                        stacked[key][where] = torch.from_numpy(np.ascontiguousarray(image))
        if action_mask is not None:
            return {"obs": stacked, "actions": actions, "action_mask": action_mask}
        return {"obs": stacked, "actions": actions}

    def action_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension min and max of the demonstrated actions."""
        with open_dataset(self.path) as file:  # actions only: no image reads
            actions = np.concatenate([file[f"data/{name}/actions"][()] for name in self.demos])
        return actions.min(axis=0), actions.max(axis=0)

    def lowdim_stats(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of the concatenated proprio vector over every sample."""
        if not keys:
            return np.zeros(0), np.ones(0)
        values = np.concatenate(
            [
                np.concatenate([self._demo(i)[key] for key in keys], axis=-1)
                for i in range(len(self.demos))
            ]
        )
        return values.mean(axis=0), values.std(axis=0)


class MultiFileDataset(Dataset):
    """Several files' DemoDatasets as one: a batch is fetched per file, then concatenated."""

    def __init__(self, parts: list[DemoDataset]) -> None:
        self.parts = parts
        self.offsets = np.cumsum([0, *(len(part) for part in parts)])
        self.cached_bytes = sum(part.cached_bytes for part in parts)
        self.total_bytes = sum(part.total_bytes for part in parts)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, item: int) -> dict:
        return self.__getitems__([item])

    def __getitems__(self, items: list[int]) -> dict:
        rows = np.asarray(items)
        owner = np.searchsorted(self.offsets, rows, side="right") - 1
        pieces = [
            (np.flatnonzero(owner == i), part.__getitems__((rows[owner == i] - start).tolist()))
            for i, (part, start) in enumerate(zip(self.parts, self.offsets[:-1], strict=False))
            if np.any(owner == i)
        ]
        order = np.argsort(np.concatenate([positions for positions, _ in pieces]), kind="stable")
        obs = {
            key: torch.cat([batch["obs"][key] for _, batch in pieces])[order]
            for key in pieces[0][1]["obs"]
        }
        targets = {  # "actions", and "action_mask" with an action horizon
            key: torch.cat([batch[key] for _, batch in pieces])[order]
            for key in pieces[0][1]
            if key != "obs"
        }
        return {"obs": obs, **targets}

    def action_range(self) -> tuple[np.ndarray, np.ndarray]:
        ranges = [part.action_range() for part in self.parts]
        return np.min([r[0] for r in ranges], axis=0), np.max([r[1] for r in ranges], axis=0)

    def lowdim_stats(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std over every sample of every file (pooled from each file's moments)."""
        counts = np.array([len(part) for part in self.parts], dtype=np.float64)
        moments = [part.lowdim_stats(keys) for part in self.parts]
        means = np.stack([m[0] for m in moments])
        squares = np.stack([m[1] ** 2 + m[0] ** 2 for m in moments])
        weights = counts[:, None] / counts.sum()
        mean = (weights * means).sum(axis=0)
        return mean, np.sqrt(np.maximum((weights * squares).sum(axis=0) - mean**2, 0.0))


def dataset_paths(data: str) -> list[Path]:
    """The files `data=` names: one path, a comma-separated list, or a glob pattern."""
    paths: list[Path] = []
    for item in (part.strip() for part in str(data).split(",")):
        if not item:
            continue
        if glob.has_magic(item):
            matches = sorted(glob.glob(item))
            if not matches:
                raise VismanipError(f"data={item}: no file matches the pattern")
            paths += [Path(match) for match in matches]
        else:
            paths.append(Path(item))
    if not paths:
        raise VismanipError("no dataset given: pass data=path/to/demos.hdf5")
    return paths


def _already_batched(batch: Any) -> Any:
    return batch


def _start_loader_worker(worker_id: int) -> None:
    """Give each loader process its own augmentation draws and its own HDF5 handle.

    A forked worker inherits the parent's albumentations generator (every worker would
    draw the same shifts) and any open h5py handle (not safe to share across processes).
    torch seeds each worker with the loader's base seed + worker_id, so this stays
    reproducible for a fixed `seed`.
    """
    info = torch.utils.data.get_worker_info()
    assert info is not None, "runs inside a DataLoader worker"
    dataset = info.dataset
    assert isinstance(dataset, DemoDataset | MultiFileDataset)
    parts = dataset.parts if isinstance(dataset, MultiFileDataset) else [dataset]
    for part in parts:
        part.start_in_worker(info.seed % 2**31)


class DemoDataModule(L.LightningDataModule):
    """Train/valid splits from the dataset's masks, as Lightning expects them."""

    def __init__(
        self,
        path: str,
        config: LoaderConfig,
        obs_keys: list[str],
        seed: int = 0,
        train_transform: SampleTransform | None = None,
        action_horizon: int = 1,
        obs_history: int = 1,
    ) -> None:
        super().__init__()
        self.train_transform = train_transform
        self.action_horizon = action_horizon
        self.obs_history = obs_history
        if not path:
            raise VismanipError("no dataset given: pass data=path/to/demos.hdf5")
        self.path = path
        self.paths = dataset_paths(path)
        self.config = config
        self.obs_keys = obs_keys
        self.seed = seed
        self.train_set: DemoDataset | MultiFileDataset | None = None
        self.valid_set: DemoDataset | MultiFileDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if len(self.paths) == 1:
            self.train_set, self.valid_set = self._splits(self.paths[0], self.config.cache_gb * 1e9)
        else:
            # Each file gets an equal share of the cache still free, so what a small file
            # leaves unused goes to the files after it.
            free = self.config.cache_gb * 1e9
            splits = []
            for k, path in enumerate(self.paths):
                train, valid = self._splits(path, free / (len(self.paths) - k), check_batch=False)
                free -= train.cached_bytes + (valid.cached_bytes if valid is not None else 0)
                splits.append((train, valid))
            self.train_set = MultiFileDataset([train for train, _ in splits])
            self._check_one_batch(self.train_set, ",".join(map(str, self.paths)), "each file's")
            valid_parts = [part for _, part in splits if part is not None]
            self.valid_set = MultiFileDataset(valid_parts) if valid_parts else None
        self._warn_when_the_cache_is_short()

    def _warn_when_the_cache_is_short(self) -> None:
        # Measured on Square (twenty-ninth session): 4 GB of cache for 10 GB of images
        # trained at 0.9 batches/s instead of ~6, with nothing on screen to say why.
        sets = [part for part in (self.train_set, self.valid_set) if part is not None]
        cached = sum(part.cached_bytes for part in sets)
        total = sum(part.total_bytes for part in sets)
        if cached < total:
            warnings.warn(
                f"loader.cache_gb={self.config.cache_gb:g} holds {cached / 1e9:.1f} of the "
                f"{total / 1e9:.1f} GB of observations in memory; the rest is read from disk "
                "for every batch, several times slower: raise loader.cache_gb if memory allows",
                stacklevel=2,
            )

    def _check_one_batch(
        self, train: DemoDataset | MultiFileDataset, where: str, split: str
    ) -> None:
        # The loader drops an incomplete last batch (steady batch statistics), so a split
        # smaller than one batch would train nothing while Lightning reports success.
        if len(train) < self.config.batch_size:
            raise VismanipError(
                f"{where}: the training split ({split}) has {len(train)} samples, "
                f"fewer than one batch (loader.batch_size={self.config.batch_size}); "
                "lower loader.batch_size or add demos"
            )

    def _splits(
        self, path: Path, cache: float, check_batch: bool = True
    ) -> tuple[DemoDataset, DemoDataset | None]:
        """One file's train and valid demos by its masks (all demos train without masks)."""
        with open_dataset(path) as file:
            names = demo_names(file)
            if not names:
                raise VismanipError(f"{path}: contains no demos")
            has_masks = "mask" in file
            train = mask(file, self.config.train_mask) if has_masks else names
            valid = (
                mask(file, self.config.valid_mask) if self.config.valid_mask and has_masks else []
            )
        if self.config.valid_mask and has_masks and not valid:
            raise VismanipError(
                f"{path}: mask/{self.config.valid_mask} is empty; add demos to it, or "
                "train without validation: loader.valid_mask=''"
            )
        train_set = DemoDataset(
            path,
            train,
            self.obs_keys,
            cache,
            self.train_transform,
            self.action_horizon,
            self.obs_history,
        )
        if check_batch:
            split = f"mask/{self.config.train_mask}" if has_masks else "all demos"
            self._check_one_batch(train_set, str(path), split)
        valid_set = (
            DemoDataset(
                path,
                valid,
                self.obs_keys,
                cache - train_set.cached_bytes,
                action_horizon=self.action_horizon,
                obs_history=self.obs_history,
            )
            if valid
            else None
        )
        return train_set, valid_set

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        assert self.train_set is not None, "call setup() first"
        return DataLoader(
            self.train_set,
            batch_size=self.config.batch_size,
            shuffle=True,
            drop_last=True,
            collate_fn=_already_batched,
            generator=generator,
            **self._workers(),
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.valid_set is None:
            return []
        return DataLoader(
            self.valid_set,
            batch_size=self.config.batch_size,
            collate_fn=_already_batched,
            **self._workers(),
        )

    def _workers(self) -> dict[str, Any]:
        """DataLoader arguments for `num_workers` loader processes, kept across epochs."""
        if self.config.num_workers == 0:
            return {}
        return {
            "num_workers": self.config.num_workers,
            "persistent_workers": True,
            "worker_init_fn": _start_loader_worker,
        }


def dataset_shapes(path: str | Path) -> tuple[int, dict[str, int], list[str], dict]:
    """(image size, proprio dims, cameras, env_args) read from a dataset's first demo."""
    from vismanip.data.hdf5 import env_args

    with open_dataset(path) as file:
        names = demo_names(file)
        if not names:
            raise VismanipError(f"{path}: contains no demos")
        obs = file[f"data/{names[0]}/obs"]
        cameras = [key[: -len("_image")] for key in obs if key.endswith("_image")]
        if not cameras:
            raise VismanipError(f"{path}: has no image observations (obs/<camera>_image)")
        size = int(obs[f"{cameras[0]}_image"].shape[1])
        lowdim = {
            key: int(np.prod(obs[key].shape[1:])) for key in obs if not key.endswith("_image")
        }
        return size, lowdim, cameras, env_args(file)


def action_width(path: str | Path) -> int:
    """Numbers per action in a dataset (7 for the simulator's OSC command; any width for
    data imported from elsewhere)."""
    with open_dataset(path) as file:
        return int(file[f"data/{demo_names(file)[0]}/actions"].shape[1])
