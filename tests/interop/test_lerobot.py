"""LeRobot both ways: our export loads with LeRobot's own `LeRobotDataset` offline, and
HDF5 -> LeRobot -> HDF5 keeps actions and low-dim observations exactly (at LeRobot's
float32) and images within the video codec's tolerance."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from conftest import collect_lift, one_line_error, run_cli, run_in_process

lerobot_dataset = pytest.importorskip(
    "lerobot.datasets.lerobot_dataset", reason="the lerobot extra is not installed"
)

MIN_PSNR_DB = 30.0  # measured 35-37 dB on 84x84 Lift frames (AV1, LeRobot's defaults)


@pytest.mark.sim
def test_round_trip_through_lerobot(tmp_path):
    data, folder, back = tmp_path / "lift.hdf5", tmp_path / "lift_lerobot", tmp_path / "back.hdf5"
    collect_lift(data, size=64)
    exported = run_cli("data", "export", str(data), "--to", "lerobot", "--out", str(folder))
    assert exported.stdout.strip() == f"LeRobotDataset written to {folder}"
    # no encoder banners or per-episode bars (FFmpeg's "moving the moov atom" lines from
    # LeRobot's finalize still show: its own logger, restored after each video)
    assert "Svt[" not in exported.stderr and "Map:" not in exported.stderr

    loaded = lerobot_dataset.LeRobotDataset(
        "vismanip/lift", root=folder, video_backend="torchcodec"
    )
    info = json.loads((folder / "meta" / "info.json").read_text())
    with h5py.File(data) as file:
        steps = int(file["data"].attrs["total"])
        valid = len(file["mask/valid"])
    assert len(loaded) == steps and loaded.num_episodes == 3 and loaded.meta.fps == 20
    frame = loaded[0]
    assert frame["observation.images.agentview"].shape == (3, 64, 64)
    assert frame["action"].shape == (7,) and frame["task"] == "lift the cube"
    assert info["splits"] == {"train": f"0:{3 - valid}", "valid": f"{3 - valid}:3"}

    run_cli("data", "import", str(folder), "--from", "lerobot", "--out", str(back))
    order = info["vismanip"]["demos"]
    psnr = []
    with h5py.File(data) as original, h5py.File(back) as imported:
        assert json.loads(imported["data"].attrs["env_args"]) == json.loads(
            original["data"].attrs["env_args"]
        )
        for index, name in enumerate(order):
            ours, theirs = original[f"data/{name}"], imported[f"data/demo_{index}"]
            np.testing.assert_array_equal(
                ours["actions"][()].astype(np.float32), theirs["actions"][()].astype(np.float32)
            )
            for key in ours["obs"]:
                a, b = ours["obs"][key][()], theirs["obs"][key][()]
                if key.endswith("_image"):
                    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
                    psnr.append(10 * np.log10(255**2 / max(mse, 1e-10)))
                else:
                    np.testing.assert_array_equal(a.astype(np.float32), b.astype(np.float32))
    assert min(psnr) > MIN_PSNR_DB, psnr
    assert run_in_process("data", "validate", str(back))[0] == 0


def test_bad_inputs_are_one_line(tmp_path, tiny_dataset):
    path, _ = tiny_dataset
    (tmp_path / "taken").mkdir()
    one_line_error(
        *run_in_process(
            "data", "export", str(path), "--to", "lerobot", "--out", str(tmp_path / "taken")
        )[:3:2],
        "export",
    )
    status, _, err = run_in_process(
        "data", "import", str(tmp_path), "--from", "lerobot", "--out", str(tmp_path / "x.hdf5")
    )
    one_line_error(status, err, "import")
    assert "not a LeRobotDataset" in err


def _other_robot_dataset(folder) -> None:
    """A LeRobotDataset of another robot, made with LeRobot's own writer: 6-D joint-position
    actions (not our OSC command, outside [-1, 1]), one camera, no vismanip metadata."""
    rng = np.random.default_rng(0)
    names = [f"joint_{i}" for i in range(6)]
    dataset = lerobot_dataset.LeRobotDataset.create(
        repo_id="other/arm",
        fps=10,
        root=folder,
        use_videos=False,
        features={
            "observation.images.front": {
                "dtype": "image",
                "shape": (32, 32, 3),
                "names": ["height", "width", "channels"],
            },
            "observation.state": {"dtype": "float32", "shape": (6,), "names": names},
            "action": {"dtype": "float32", "shape": (6,), "names": names},
        },
    )
    for _ in range(3):
        for _ in range(12):
            dataset.add_frame(
                {
                    "observation.images.front": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
                    "observation.state": rng.normal(size=6).astype(np.float32),
                    "action": (3 * rng.normal(size=6)).astype(np.float32),
                    "task": "reach",
                }
            )
        dataset.save_episode()
    dataset.finalize()


def test_another_robots_actions_import_and_train_but_do_not_evaluate_here(tmp_path):
    folder, data, run = tmp_path / "arm", tmp_path / "arm.hdf5", tmp_path / "run"
    _other_robot_dataset(folder)
    run_cli("data", "import", str(folder), "--from", "lerobot", "--out", str(data))
    with h5py.File(data) as file:
        assert file["data/demo_0/actions"].shape == (12, 6)
    assert run_in_process("data", "validate", str(data))[0] == 0

    status, _, err = run_in_process(
        "train", f"data={data}", f"output_dir={tmp_path / 'r0'}", "policy.lowdim_keys=[state]"
    )
    one_line_error(status, err, "train with rollouts")
    assert "rollout.every_n_epochs=0" in err

    settings = ["trainer.max_epochs=1", "loader.batch_size=8", "rollout.every_n_epochs=0"]
    status, _, err = run_in_process(
        "train", f"data={data}", f"output_dir={run}", "policy.lowdim_keys=[state]", *settings
    )
    assert status == 0, err
    status, _, err = run_in_process("eval", str(run / "best.ckpt"), "--task", "lift")
    one_line_error(status, err, "eval")
    assert "6-D actions" in err and "cannot be evaluated here" in err
