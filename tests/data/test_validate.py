"""Every validation error: one clear line naming the problem; nothing written is touched."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from vismanip.data.validate import dataset_info, validate_dataset


def test_valid_dataset_has_no_problems(tiny_dataset):
    path, _ = tiny_dataset
    assert validate_dataset(path) == []


def _corrupt(path, edit):
    with h5py.File(path, "a") as file:
        edit(file)


def _replace(file, key, value):
    del file[key]
    file[key] = value


CORRUPTIONS = {
    "missing actions": (
        lambda f: f.__delitem__("data/demo_1/actions"),
        "demo_1: missing 'actions'",
    ),
    "wrong action shape": (
        lambda f: _replace(f, "data/demo_0/actions", np.zeros((5, 6))),
        "expected (T, 7)",
    ),
    "nan action": (
        lambda f: f["data/demo_2/actions"].__setitem__((3, 4), np.nan),
        "NaN or inf at step 3, dimension 4",
    ),
    "action out of range": (
        lambda f: f["data/demo_0/actions"].__setitem__((2, 1), 1.7),
        "1.700 at step 2 is outside [-1, 1]",
    ),
    "short obs": (
        lambda f: _replace(f, "data/demo_1/obs/robot0_eef_pos", np.zeros((3, 3))),
        "obs/robot0_eef_pos: length 3, expected 7",
    ),
    "float image": (
        lambda f: _replace(f, "data/demo_0/obs/agentview_image", np.zeros((5, 32, 32, 3))),
        "dtype float64, expected uint8",
    ),
    "image without channels": (
        lambda f: _replace(f, "data/demo_0/obs/agentview_image", np.zeros((5, 32, 32), np.uint8)),
        "expected (T, H, W, 3)",
    ),
    "inf in obs": (
        lambda f: f["data/demo_0/next_obs/object"].__setitem__((0, 0), np.inf),
        "next_obs/object: contains NaN or inf",
    ),
    "no obs": (lambda f: f.__delitem__("data/demo_2/obs"), "demo_2: missing 'obs'"),
    "wrong total": (lambda f: f["data"].attrs.__setitem__("total", 99), "['total'] is 99"),
    "no env_args": (lambda f: f["data"].attrs.__delitem__("env_args"), "no env_args"),
    "bad env_args": (lambda f: f["data"].attrs.__setitem__("env_args", "{oops"), "not valid JSON"),
    "mask names missing demo": (
        lambda f: _replace(f, "mask/valid", np.array([b"demo_7"])),
        "mask/valid: names demos that do not exist",
    ),
    "one demo's frames at another size": (
        lambda f: [
            _replace(f, f"data/demo_1/{group}/agentview_image", np.zeros((7, 40, 40, 3), np.uint8))
            for group in ("obs", "next_obs")
        ],
        "data/demo_1/next_obs/agentview_image: per-step shape (40, 40, 3) uint8, "
        "expected (32, 32, 3) uint8 like data/demo_0",
    ),
    "one demo's sim state wider, same model": (
        lambda f: _replace(f, "data/demo_1/states", np.zeros((7, 26))),
        "data/demo_1/states: per-step shape (26,) float64, expected (20,) float64 like data/demo_0",
    ),
    "one demo lacks a low-dim key": (
        lambda f: [f.__delitem__(f"data/demo_2/{g}/robot0_eef_pos") for g in ("obs", "next_obs")],
        "data/demo_2/next_obs/robot0_eef_pos: missing (data/demo_0 has it)",
    ),
    "string actions": (
        lambda f: _replace(f, "data/demo_0/actions", np.array([b"x"] * 5)),
        "data/demo_0/actions: dtype |S1, expected numbers",
    ),
    "empty demo": (
        lambda f: [
            _replace(f, "data/demo_0/actions", np.zeros((0, 7))),
            f["data/demo_0"].attrs.__setitem__("num_samples", 0),
        ],
        "data/demo_0: has no steps",
    ),
    "num_samples lies": (
        lambda f: f["data/demo_0"].attrs.__setitem__("num_samples", 4),
        "num_samples is 4 but actions has 5 steps",
    ),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_each_problem_is_reported(tiny_dataset, name):
    path, _ = tiny_dataset
    edit, expected = CORRUPTIONS[name]
    _corrupt(path, edit)
    problems = validate_dataset(path)
    assert any(expected in problem for problem in problems), problems


def test_missing_and_truncated_files(tmp_path, tiny_dataset):
    assert "no such file" in validate_dataset(tmp_path / "nope.hdf5")[0]
    path, _ = tiny_dataset
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    problems = validate_dataset(path)
    assert problems and str(path) in problems[0]


def test_info_summarises(tiny_dataset):
    path, _ = tiny_dataset
    info = dataset_info(path)
    assert info["demos"] == 3 and info["steps"] == 18
    assert info["obs"]["agentview_image"] == {"shape": [32, 32, 3], "dtype": "uint8"}
    assert info["success"] == {"known": 3, "successful": 3}
    assert len(info["action_min"]) == 7


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "vismanip.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_validate_prints_one_line_per_problem_and_keeps_the_file(tiny_dataset):
    path, _ = tiny_dataset
    _corrupt(path, CORRUPTIONS["nan action"][0])
    _corrupt(path, CORRUPTIONS["wrong total"][0])
    before = path.read_bytes()
    result = _cli("data", "validate", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(str(path)) for line in lines)
    assert "Traceback" not in result.stderr
    assert path.read_bytes() == before


def test_cli_reports_unreadable_file_in_one_line(tmp_path):
    path = tmp_path / "junk.hdf5"
    path.write_text("junk")
    result = _cli("data", "info", str(path))
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"error: {path}: not an HDF5 file (wrong format, or truncated/corrupt)"
    )


def test_cli_valid_dataset_exits_zero(tiny_dataset):
    path, _ = tiny_dataset
    result = _cli("data", "validate", str(path))
    assert result.returncode == 0, result.stderr


def test_demos_of_another_model_may_have_another_sim_state_width(tiny_dataset):
    """DAgger appends rounds rolled out in a wider scene (more objects) to the demos: each
    state goes with its own demo's model_file, as in robomimic."""
    path, _ = tiny_dataset
    with h5py.File(path, "a") as file:
        for name in ("demo_1", "demo_2"):
            _replace(
                file, f"data/{name}/states", np.zeros((file[f"data/{name}/actions"].shape[0], 26))
            )
            file[f"data/{name}"].attrs["model_file"] = "<mujoco model='wider'/>"
    assert validate_dataset(path) == []
    with h5py.File(path, "a") as file:
        _replace(file, "data/demo_2/states", np.zeros((file["data/demo_2/actions"].shape[0], 30)))
    assert validate_dataset(path) == [
        "data/demo_2/states: per-step shape (30,) float64, expected (26,) float64 like data/demo_1"
    ]
