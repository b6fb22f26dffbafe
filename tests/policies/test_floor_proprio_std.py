"""scripts/floor_proprio_std.py: a checkpoint's proprio std floored, the weights kept."""

import subprocess
import sys

import numpy as np
import torch

from vismanip.envs.tasks import EnvConfig
from vismanip.policies.checkpoint import load_policy, save_policy
from vismanip.policies.configuration_image_policy import ImagePolicyConfig
from vismanip.policies.modeling_image_policy import ImagePolicy

LOWDIM = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}


def test_the_copy_is_floored_on_the_named_key_and_a_bad_key_is_one_line(tmp_path):
    policy = ImagePolicy(ImagePolicyConfig(cameras=["agentview"]), 32, LOWDIM)
    policy.set_normalization(
        np.zeros(9), np.array([0.04, 0.02, 0.07, 0.02, 0.2, 0.016, 0.003, 0.007, 0.007])
    )
    source, floored = tmp_path / "bc.ckpt", tmp_path / "floored.ckpt"
    save_policy(source, policy, EnvConfig(task="lift", cameras=["agentview"]), {"data": "d"})
    script = [sys.executable, "scripts/floor_proprio_std.py", str(source), "--floor", "0.05"]
    subprocess.run(
        [*script, "--keys", "robot0_eef_quat", "--out", str(floored)],
        check=True,
        capture_output=True,
    )
    loaded = load_policy(floored)
    rebuilt = loaded.weights.build()
    expected = [0.04, 0.02, 0.07, 0.05, 0.2, 0.05, 0.05, 0.007, 0.007]
    torch.testing.assert_close(rebuilt.lowdim_std, torch.tensor(expected))
    torch.testing.assert_close(rebuilt.head.weight, policy.head.weight)
    assert loaded.env_config.task == "lift" and loaded.train_config == {"data": "d"}
    result = subprocess.run(
        [*script, "--keys", "object_pos", "--out", str(tmp_path / "x.ckpt")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0 and not (tmp_path / "x.ckpt").exists()
    assert result.stderr.strip().splitlines() == [
        "error: proprio keys to floor ['object_pos'] must be among policy.lowdim_keys "
        "['robot0_eef_pos', 'robot0_eef_quat', 'robot0_gripper_qpos']"
    ]
