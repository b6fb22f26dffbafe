import warnings

import h5py
import numpy as np
import pytest
import torch
from conftest import write_dataset

from vismanip.data.datamodule import DemoDataModule, DemoDataset, LoaderConfig
from vismanip.data.hdf5 import demo_names
from vismanip.errors import VismanipError

KEYS = ["agentview_image", "robot0_eef_pos"]


def test_batches_match_the_file_in_order(tiny_dataset):
    path, episodes = tiny_dataset
    dataset = DemoDataset(path, ["demo_0", "demo_1", "demo_2"], KEYS, cache_bytes=1e9)
    assert len(dataset) == 18
    items = [17, 0, 6, 5, 12]  # mixed demos, out of order
    batch = dataset.__getitems__(items)
    assert batch["obs"]["agentview_image"].dtype == torch.uint8
    assert batch["obs"]["agentview_image"].shape == (5, 32, 32, 3)
    for row, item in enumerate(items):
        single = dataset[item]
        torch.testing.assert_close(batch["actions"][row], single["actions"][0])
        torch.testing.assert_close(
            batch["obs"]["robot0_eef_pos"][row], single["obs"]["robot0_eef_pos"][0]
        )
    # item 6 is demo_1 step 1
    expected = torch.from_numpy(np.asarray(episodes[1].actions[1], dtype=np.float32))
    torch.testing.assert_close(dataset[6]["actions"][0], expected)


def test_lazy_reads_beyond_the_cache_give_the_same_samples(tiny_dataset):
    path, _ = tiny_dataset
    cached = DemoDataset(path, ["demo_0", "demo_1", "demo_2"], KEYS, cache_bytes=1e9)
    lazy = DemoDataset(path, ["demo_0", "demo_1", "demo_2"], KEYS, cache_bytes=0)
    assert lazy.cache == {} and len(cached.cache) == 3
    for item in (0, 9, 17):
        torch.testing.assert_close(
            lazy[item]["obs"]["agentview_image"], cached[item]["obs"]["agentview_image"]
        )


def test_upside_down_files_are_flipped_upright(tiny_dataset):
    path, episodes = tiny_dataset
    with h5py.File(path, "a") as file:
        file["data"].attrs["image_convention"] = "opengl"
    dataset = DemoDataset(path, ["demo_0"], KEYS, cache_bytes=1e9)
    stored = episodes[0].stacked_obs()["agentview_image"][0]
    np.testing.assert_array_equal(dataset[0]["obs"]["agentview_image"][0].numpy(), stored[::-1])


def test_datamodule_uses_the_masks(tiny_dataset):
    path, _ = tiny_dataset
    module = DemoDataModule(str(path), LoaderConfig(batch_size=4), KEYS)
    module.setup()
    with h5py.File(path) as file:
        valid = [n.decode() for n in file["mask/valid"][()]]
    assert module.valid_set.demos == valid
    assert set(module.train_set.demos) | set(valid) == set(demo_names(h5py.File(path)))
    batch = next(iter(module.train_dataloader()))
    assert batch["actions"].shape == (4, 7)


def test_a_small_file_leaves_its_unused_cache_to_the_next_and_a_short_cache_warns(tmp_path):
    small, large = tmp_path / "small.hdf5", tmp_path / "large.hdf5"
    write_dataset(small, [5, 7, 6])
    write_dataset(large, [9, 9, 9, 9, 9, 9])
    sizes = [
        DemoDataModule(str(p), LoaderConfig(batch_size=4, cache_gb=0), KEYS) for p in (small, large)
    ]
    with warnings.catch_warnings(record=True):
        for module in sizes:
            module.setup()
    small_bytes, large_bytes = (m.train_set.total_bytes + m.valid_set.total_bytes for m in sizes)
    assert large_bytes > small_bytes  # so an equal half of their sum would not hold `large`

    both = f"{small},{large}"
    exact = LoaderConfig(batch_size=4, cache_gb=(small_bytes + large_bytes) / 1e9)
    module = DemoDataModule(both, exact, KEYS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning here fails the test
        module.setup()
    parts = module.train_set.parts + module.valid_set.parts
    assert all(len(part.cache) == len(part.demos) for part in parts)

    short = LoaderConfig(batch_size=4, cache_gb=small_bytes / 1e9)
    with pytest.warns(UserWarning, match=r"loader.cache_gb=.* holds .* raise loader.cache_gb"):
        DemoDataModule(both, short, KEYS).setup()


def test_missing_key_and_nan_actions_are_clear_errors(tiny_dataset):
    path, _ = tiny_dataset
    with pytest.raises(VismanipError, match="no obs key 'robot0_eye_in_hand_image'"):
        DemoDataset(path, ["demo_0"], ["robot0_eye_in_hand_image"], 1e9)
    with h5py.File(path, "a") as file:
        file["data/demo_1/actions"][2, 0] = np.nan
    with pytest.raises(VismanipError, match="demo_1/actions contains NaN"):
        DemoDataset(path, ["demo_1"], KEYS, 1e9)


def test_action_chunks_are_the_next_actions_masked_past_the_demo_end(tiny_dataset):
    path, episodes = tiny_dataset  # demo lengths 5, 7, 6
    dataset = DemoDataset(path, ["demo_0", "demo_1"], KEYS, cache_bytes=1e9, action_horizon=4)
    demo_1 = np.asarray(episodes[1].actions, dtype=np.float32)
    batch = dataset.__getitems__([6, 11, 4])  # demo_1 step 1, demo_1 step 6 (last), demo_0 last
    assert batch["actions"].shape == (3, 4, 7) and batch["action_mask"].shape == (3, 4)
    torch.testing.assert_close(batch["actions"][0], torch.from_numpy(demo_1[1:5]))
    assert batch["action_mask"][0].all()
    # the last step: its own action, then the last action repeated and masked out
    torch.testing.assert_close(batch["actions"][1], torch.from_numpy(demo_1[[6, 6, 6, 6]]))
    assert batch["action_mask"][1].tolist() == [True, False, False, False]
    assert batch["action_mask"][2].tolist() == [True, False, False, False]


def test_observation_history_repeats_the_first_frame_at_a_demo_start(tiny_dataset):
    path, episodes = tiny_dataset
    dataset = DemoDataset(path, ["demo_0", "demo_1"], KEYS, cache_bytes=0, obs_history=3)
    batch = dataset.__getitems__([6, 8])  # demo_1 steps 1 and 3
    assert batch["obs"]["agentview_image"].shape == (2, 3, 32, 32, 3)
    single = DemoDataset(path, ["demo_1"], KEYS, cache_bytes=0)
    frames = single.__getitems__(list(range(4)))["obs"]["robot0_eef_pos"]
    torch.testing.assert_close(batch["obs"]["robot0_eef_pos"][0], frames[[0, 0, 1]])
    torch.testing.assert_close(batch["obs"]["robot0_eef_pos"][1], frames[[1, 2, 3]])


def _epoch(module: DemoDataModule) -> list[dict]:
    return list(module.train_dataloader())


def test_loader_workers_serve_the_main_process_batches(tiny_dataset):
    """num_workers only moves the gathering: same order and samples, seeded augmentation."""
    from vismanip.sim2real.augmentation import AugmentationConfig, albumentations_pipeline

    path, _ = tiny_dataset
    keys = ["agentview_image", "robot0_eef_pos"]
    in_process = DemoDataModule(str(path), LoaderConfig(batch_size=2), keys, seed=3)
    in_process.setup()
    workers = DemoDataModule(str(path), LoaderConfig(batch_size=2, num_workers=2), keys, seed=3)
    workers.setup()
    for plain, served in zip(_epoch(in_process), _epoch(workers), strict=True):
        torch.testing.assert_close(served["actions"], plain["actions"])
        torch.testing.assert_close(
            served["obs"]["agentview_image"], plain["obs"]["agentview_image"]
        )

    def shifted_epoch() -> list[dict]:
        shift = albumentations_pipeline(AugmentationConfig(shift_pad=4), 32, ["agentview_image"], 0)
        module = DemoDataModule(
            str(path),
            LoaderConfig(batch_size=2, num_workers=2),
            keys,
            seed=3,
            train_transform=shift,
        )
        module.setup()
        return _epoch(module)

    first, again = shifted_epoch(), shifted_epoch()
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a["obs"]["agentview_image"], b["obs"]["agentview_image"])
    assert any(
        not torch.equal(a["obs"]["agentview_image"], plain["obs"]["agentview_image"])
        for a, plain in zip(first, _epoch(in_process), strict=True)
    ), "the workers' batches are augmented"


def test_negative_loader_workers_is_a_clear_error():
    with pytest.raises(VismanipError, match="loader.num_workers must be >= 0"):
        LoaderConfig(num_workers=-1)
