"""Checkpoints load as weights plus plain metadata: a crafted file runs nothing."""

from __future__ import annotations

import os

import pytest
import torch

from vismanip.errors import VismanipError
from vismanip.policies import ImagePolicy, ImagePolicyConfig
from vismanip.policies.checkpoint import PolicyWeights, checkpoint_metadata, load_policy


class Payload:
    """Unpickling this calls os.system: what a malicious checkpoint would carry."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_checkpoint_that_carries_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "payload_ran"
    crafted = tmp_path / "crafted.ckpt"
    torch.save({"vismanip": Payload(f"touch {marker}"), "state_dict": {}}, crafted)
    with pytest.raises(VismanipError, match="refused") as error:
        load_policy(crafted)
    assert "\n" not in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, message",
    [(b"not a checkpoint at all", "not a readable checkpoint"), (None, "not a vismanip")],
)
def test_files_that_are_not_ours_get_one_line(tmp_path, content, message):
    path = tmp_path / "other.ckpt"
    if content is None:
        torch.save({"state_dict": {"weight": torch.zeros(2)}}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(VismanipError, match=message):
        load_policy(path)
    with pytest.raises(VismanipError, match="no such checkpoint"):
        load_policy(tmp_path / "missing.ckpt")


def test_weights_and_scene_round_trip(tmp_path):
    from vismanip.envs.tasks import EnvConfig

    policy = ImagePolicy(ImagePolicyConfig(cameras=["agentview"]), 32, _LOWDIM)
    weights = PolicyWeights.of(policy)
    env = EnvConfig(task="lift_perturbed", cameras=["agentview"], image_size=32)
    path = tmp_path / "policy.ckpt"
    torch.save(
        {
            "state_dict": {f"policy.{k}": v for k, v in weights.state.items()},
            "vismanip": checkpoint_metadata(policy, env, None),
        },
        path,
    )
    loaded = load_policy(path)
    assert loaded.env_config == env and loaded.env_for("lift").task == "lift"
    rebuilt = loaded.weights.build()
    for key, value in policy.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key


_LOWDIM = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}


def test_descriptions_saved_before_a_config_key_existed_still_match():
    config = ImagePolicyConfig(cameras=["agentview"], lowdim_keys=["robot0_eef_pos"])
    policy = ImagePolicy(config, 32, {"robot0_eef_pos": 3})
    old = policy.describe()
    for key in ("chunk_size", "ensemble_decay"):  # keys added after the first checkpoints
        del old["config"][key]
    assert ImagePolicy.complete_description(old) == policy.describe()
