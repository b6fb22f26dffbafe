"""BC training: the loss falls, runs resume after a kill, bad settings fail in one line."""

import csv
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from vismanip.algos.bc import RolloutConfig, TrainConfig, TrainerConfig, train
from vismanip.config import load_config, load_run_config
from vismanip.data.datamodule import LoaderConfig
from vismanip.errors import VismanipError
from vismanip.policies import ImagePolicyConfig
from vismanip.sim2real.augmentation import AugmentationConfig


def _config(dataset, run_dir, epochs):
    return TrainConfig(
        data=str(dataset),
        output_dir=str(run_dir),
        loader=LoaderConfig(batch_size=4),
        trainer=TrainerConfig(max_epochs=epochs, log_every_n_steps=1),
        rollout=RolloutConfig(every_n_epochs=0),
        augmentation=AugmentationConfig(shift_pad=0),
        policy=ImagePolicyConfig(lowdim_keys=["robot0_eef_pos"]),
    )


def _epoch_losses(run_dir: Path, name: str = "metrics.csv") -> dict[int, float]:
    with (run_dir / "logs" / name).open() as file:
        return {
            int(r["epoch"]): float(r["train/loss_epoch"])
            for r in csv.DictReader(file)
            if r.get("train/loss_epoch")
        }


def _logged_epoch_loss(run_dir: Path, epoch: int) -> bool:
    """Whether metrics.csv already holds this epoch's training loss (the row Lightning writes
    last in an epoch, after that epoch's checkpoint)."""
    try:
        return epoch in _epoch_losses(run_dir)
    except (OSError, KeyError, ValueError):
        return False  # the file is being rewritten


def test_tiny_training_run_lowers_the_loss(tiny_dataset, tmp_path):
    dataset, _ = tiny_dataset
    best = train(_config(dataset, tmp_path / "run", epochs=25))
    losses = _epoch_losses(tmp_path / "run")
    assert losses[24] < 0.75 * losses[0], losses
    for name in ("best.ckpt", "last.ckpt", "config.yaml", "run.json", "learning_curve.png"):
        assert (tmp_path / "run" / name).exists(), name
    checkpoint = torch.load(best, weights_only=False)
    assert checkpoint["vismanip"]["policy"]["config"]["cameras"] == ["agentview"]
    # The saved config reloads into the same typed config.
    saved = load_config(TrainConfig, tmp_path / "run" / "config.yaml")
    assert saved.trainer.max_epochs == 25 and saved.data == str(dataset)


def test_killed_run_resumes_to_max_epochs(tiny_dataset, tmp_path):
    dataset, _ = tiny_dataset
    run_dir = tmp_path / "run"
    args = [
        f"data={dataset}",
        f"output_dir={run_dir}",
        "loader.batch_size=4",
        "trainer.max_epochs=300",
        "rollout.every_n_epochs=0",
        "augmentation.shift_pad=0",
        "policy.lowdim_keys=[robot0_eef_pos]",
    ]
    command = [sys.executable, "-m", "vismanip.cli", "train", *args]
    log = (tmp_path / "train.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline and not (run_dir / "last.ckpt").exists():
        assert process.poll() is None, (tmp_path / "train.log").read_text()[-2000:]
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    stopped_at = torch.load(run_dir / "last.ckpt", weights_only=False)["epoch"]
    assert stopped_at < 299, "the run finished before it could be killed"

    again = subprocess.run(
        [sys.executable, "-m", "vismanip.cli", "train", *args], capture_output=True, text=True
    )
    assert again.returncode == 1 and "--resume" in again.stderr  # refuses to overwrite

    # Resume to a few epochs past the kill (the 300 only kept the first run alive long
    # enough to be killed; training them all cost minutes of the suite).
    target = stopped_at + 4
    resumed = subprocess.run(
        [
            sys.executable, "-m", "vismanip.cli", "train", "--resume", str(run_dir),
            f"trainer.max_epochs={target}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert torch.load(run_dir / "last.ckpt", weights_only=False)["epoch"] == target - 1


def test_resume_trains_longer_and_keeps_the_whole_learning_curve(tiny_dataset, tmp_path):
    dataset, _ = tiny_dataset
    run_dir = tmp_path / "run"
    train(_config(dataset, run_dir, epochs=3))
    refused = run_cli("train", "--resume", str(run_dir), "optim.lr=0.1", returncode=1)
    assert "only trainer.max_epochs=N" in refused.stderr
    resumed = run_cli("train", "--resume", str(run_dir), "trainer.max_epochs=5")
    assert sorted(_epoch_losses(run_dir)) == [0, 1, 2, 3, 4]
    assert "log files" not in resumed.stderr  # Lightning's "will be deleted": we keep them
    assert load_run_config(TrainConfig, run_dir).trainer.max_epochs == 5
    fewer = run_cli("train", "--resume", str(run_dir), "trainer.max_epochs=2", returncode=1)
    assert fewer.stderr.strip().endswith("trainer.max_epochs=2 would train fewer")
    with (run_dir / "logs" / "metrics.csv").open() as file:
        rates = [float(row["lr-AdamW"]) for row in csv.DictReader(file) if row.get("lr-AdamW")]
    # the first 3 epochs decayed over 3, the rest follow the cosine over 5 (not a restart)
    assert rates[:3] == pytest.approx([1e-3, 0.75e-3, 0.25e-3])
    assert rates[3:] == pytest.approx([0.5e-3 * (1 + math.cos(math.pi * e / 5)) for e in (3, 4)])


def test_a_copied_run_folder_resumes_where_it_is(tiny_dataset, tmp_path):
    """--resume DIR trains in DIR, also when the folder was copied or moved after it started
    (its config.yaml still names the old place)."""
    dataset, _ = tiny_dataset
    original, copy = tmp_path / "run", tmp_path / "branch"
    train(_config(dataset, original, epochs=2))
    shutil.copytree(original, copy)
    run_cli("train", "--resume", str(copy), "trainer.max_epochs=3")
    assert torch.load(copy / "last.ckpt", weights_only=False)["epoch"] == 2
    assert torch.load(original / "last.ckpt", weights_only=False)["epoch"] == 1  # untouched
    assert load_run_config(TrainConfig, copy).output_dir == str(copy)


def test_killing_a_resumed_run_keeps_the_earlier_learning_curve(tiny_dataset, tmp_path):
    dataset, _ = tiny_dataset
    run_dir = tmp_path / "run"
    train(_config(dataset, run_dir, epochs=3))
    command = [sys.executable, "-m", "vismanip.cli", "train", "--resume", str(run_dir)]
    process = subprocess.Popen([*command, "trainer.max_epochs=300"], stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not _logged_epoch_loss(run_dir, 3):
        time.sleep(0.02)  # until the resumed run has written a row of its own
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    # the killed run's own rows, and the earlier ones it had set aside
    before_kill = _epoch_losses(run_dir) | _epoch_losses(run_dir, "metrics_before_resume.csv")
    run_cli("train", "--resume", str(run_dir), "trainer.max_epochs=20")
    after = _epoch_losses(run_dir)
    # Epochs 0-3 keep the losses they were logged with; the kill may land after an epoch's
    # checkpoint but before its loss row (Lightning's order), so a later epoch may lack one.
    assert {epoch: after[epoch] for epoch in range(4)} == {
        epoch: before_kill[epoch] for epoch in range(4)
    }
    assert 19 in after and len(after) >= 19
    assert not (run_dir / "logs" / "metrics_before_resume.csv").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["data=nope.hdf5"], "error: nope.hdf5: no such file"),
        (["policy.encoder_typo=1"], "error: bad config:"),
        (["policy.lowdim_keys=[object_pose]"], "error: "),
    ],
)
def test_bad_train_inputs_fail_in_one_line(tiny_dataset, tmp_path, args, message):
    dataset, _ = tiny_dataset
    base = [f"data={dataset}", f"output_dir={tmp_path / 'run'}", "rollout.every_n_epochs=0"]
    result = subprocess.run(
        [sys.executable, "-m", "vismanip.cli", "train", *base, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def test_missing_data_is_an_error():
    with pytest.raises(VismanipError, match="no dataset given"):
        train(TrainConfig(rollout=RolloutConfig(every_n_epochs=0)))


def test_rollouts_can_run_in_randomized_scenes_but_never_held_out_ones(tiny_dataset):
    from vismanip.algos.bc import build

    path, _ = tiny_dataset
    preset = Path(__file__).resolve().parents[2] / "configs" / "randomization" / "default.yaml"
    config = load_config(
        TrainConfig,
        None,
        [
            f"data={path}",
            f"rollout.randomization={preset}",
            "task=lift",
            "policy.lowdim_keys=[robot0_eef_pos]",
            "loader.batch_size=4",
        ],
    )
    scene = config.rollout.scene(build(config).env_config)
    assert scene.randomization is not None and "photos" in scene.randomization.textures
    assert config.rollout.scene(scene.env).randomization == scene.randomization
    assert RolloutConfig().scene(scene.env).randomization is None  # off by default
    config.rollout.randomization.textures = ["heldout"]
    with pytest.raises(VismanipError, match="held"):
        build(config)


def test_a_task_given_keeps_the_demos_scene():
    """DAgger retrains object-set demos with `task=lift` given: the checkpoint must keep the
    demos' objects and clutter (or the generalization suite's seen split is plain Lift)."""
    from dataclasses import asdict

    from vismanip.algos.bc import env_config_for
    from vismanip.envs.objects import object_set
    from vismanip.envs.tasks import EnvConfig

    demos = EnvConfig(task="lift", objects=object_set("train"), clutter=2, horizon=150)
    env_args = {"env_name": "ObjectSetLift", "vismanip": {"env_config": asdict(demos)}}
    for task in ("", "lift", "lift_perturbed"):
        env = env_config_for(env_args, ["agentview"], 84, task)
        assert (env.objects, env.clutter, env.horizon) == (object_set("train"), 2, 150)
        assert env.task == (task or "lift")
    other = env_config_for(env_args, ["agentview"], 84, "pick_place_can")
    assert (other.task, other.objects, other.clutter) == ("pick_place_can", [], 0)
