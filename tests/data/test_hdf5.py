import h5py
import numpy as np
import pytest

from vismanip.data.hdf5 import (
    FOREIGN_IMAGE_CONVENTION,
    IMAGE_CONVENTION,
    demo_names,
    image_convention,
    mask,
    open_dataset,
    split_demos,
)
from vismanip.errors import VismanipError


def test_round_trip_keeps_every_array(tiny_dataset):
    path, episodes = tiny_dataset
    with open_dataset(path) as file:
        assert demo_names(file) == ["demo_0", "demo_1", "demo_2"]
        assert file["data"].attrs["total"] == sum(len(e) for e in episodes)
        assert image_convention(file) == IMAGE_CONVENTION
        for name, episode in zip(demo_names(file), episodes, strict=True):
            demo = file["data"][name]
            steps = len(episode)
            assert demo.attrs["num_samples"] == steps
            assert demo.attrs["model_file"] == "<mujoco/>"
            np.testing.assert_array_equal(demo["actions"][()], np.asarray(episode.actions))
            np.testing.assert_array_equal(demo["states"][()], np.asarray(episode.states))
            np.testing.assert_array_equal(demo["dones"][()], np.asarray(episode.dones, dtype=int))
            for key, frames in episode.stacked_obs().items():
                np.testing.assert_array_equal(demo["obs"][key][()], frames[:steps])
                np.testing.assert_array_equal(demo["next_obs"][key][()], frames[1:])
            assert demo["obs/agentview_image"].dtype == np.uint8


def test_masks_split_all_demos_disjointly(tiny_dataset):
    path, _ = tiny_dataset
    with open_dataset(path) as file:
        train, valid = mask(file, "train"), mask(file, "valid")
    assert set(train) | set(valid) == {"demo_0", "demo_1", "demo_2"}
    assert not set(train) & set(valid)
    assert len(valid) == 1


def test_split_is_seeded_and_numeric():
    names = [f"demo_{i}" for i in range(12)]
    assert split_demos(names, 0.25, seed=3) == split_demos(names, 0.25, seed=3)
    train, valid = split_demos(names, 0.25, seed=3)
    assert len(valid) == 3 and train == sorted(train, key=lambda n: int(n.split("_")[1]))


def test_demo_names_sort_numerically(tmp_path):
    path = tmp_path / "many.hdf5"
    with h5py.File(path, "w") as file:
        for index in (10, 2, 1):
            file.create_group(f"data/demo_{index}")
    with open_dataset(path) as file:
        assert demo_names(file) == ["demo_1", "demo_2", "demo_10"]
        assert image_convention(file) == FOREIGN_IMAGE_CONVENTION  # robosuite's default


@pytest.mark.parametrize(
    "content, message",
    [(None, "no such file"), (b"not hdf5 at all", "not an HDF5 file")],
)
def test_open_reports_missing_and_foreign_files(tmp_path, content, message):
    path = tmp_path / "x.hdf5"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VismanipError, match=message):
        open_dataset(path)


def test_open_reports_truncated_file(tiny_dataset):
    path, _ = tiny_dataset
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(VismanipError, match=str(path)):
        with open_dataset(path) as file:
            demo_names(file)


def test_robomimic_written_dataset_reads_like_ours(tmp_path):
    """A file from robomimic/robosuite tools: no vismanip attributes, no next_obs, no masks,
    images in robosuite's default (upside-down) orientation."""
    from vismanip.data.validate import dataset_info, validate_dataset

    path = tmp_path / "robomimic.hdf5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as file:
        data = file.create_group("data")
        data.attrs["env_args"] = '{"env_name": "PickPlaceCan", "env_type": 1, "env_kwargs": {}}'
        data.attrs["total"] = 9
        for index, steps in enumerate((4, 5)):
            demo = data.create_group(f"demo_{index}")
            demo.attrs["num_samples"] = steps
            demo["actions"] = rng.uniform(-1, 1, (steps, 7))
            demo["states"] = rng.normal(size=(steps, 30))
            demo["obs/agentview_image"] = rng.integers(0, 255, (steps, 84, 84, 3), dtype=np.uint8)
            demo["obs/robot0_eef_pos"] = rng.normal(size=(steps, 3))

    assert validate_dataset(path) == []
    info = dataset_info(path)
    assert info["demos"] == 2 and info["steps"] == 9 and info["env_name"] == "PickPlaceCan"
    assert info["image_convention"] == FOREIGN_IMAGE_CONVENTION
    assert info["obs"]["agentview_image"]["shape"] == [84, 84, 3]
