"""The Gymnasium env: passes Gymnasium's own checker, is seeded, renders the camera frame,
reports success, and builds object-set, clutter and randomized scenes."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import vismanip  # noqa: F401  (registers the ids)
from vismanip.envs.tasks import TASKS
from vismanip.errors import VismanipError
from vismanip.interop.gymnasium_env import env_id


def test_every_task_has_an_id():
    assert env_id("pick_place_can") == "vismanip/PickPlaceCan-v0"
    assert {env_id(task) for task in TASKS} <= set(gymnasium.registry)


@pytest.mark.sim
@pytest.mark.filterwarnings("error::UserWarning")  # the checker's warnings count as failures
def test_lift_passes_gymnasiums_checker_and_is_seeded():
    env = gymnasium.make(
        "vismanip/Lift-v0", cameras=["agentview", "robot0_eye_in_hand"], image_size=32
    )
    try:
        check_env(env.unwrapped, skip_render_check=False)
        first, info = env.reset(seed=3)
        assert set(first) == {
            "agentview_image",
            "robot0_eye_in_hand_image",
            "robot0_eef_pos",
            "robot0_eef_quat",
            "robot0_gripper_qpos",
        }
        assert first["agentview_image"].dtype == np.uint8 and first["agentview_image"].shape == (
            32,
            32,
            3,
        )
        assert first["robot0_eef_pos"].dtype == np.float32 and info["success"] is False
        again, _ = env.reset(seed=3)
        for key in first:
            np.testing.assert_array_equal(first[key], again[key])
        other, _ = env.reset(seed=4)
        assert not np.array_equal(first["robot0_eef_pos"], other["robot0_eef_pos"]) or not (
            np.array_equal(first["agentview_image"], other["agentview_image"])
        )
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert isinstance(reward, float) and terminated is info["success"] is False
        assert not truncated
        np.testing.assert_array_equal(env.render(), obs["agentview_image"])
    finally:
        env.close()


@pytest.mark.sim
def test_episode_truncates_at_the_horizon_and_scenes_take_options():
    env = gymnasium.make(
        "vismanip/Lift-v0",
        image_size=16,
        horizon=3,
        object_set=["cube", "can"],
        clutter=1,
        randomization="lighting",
    )
    try:
        env.reset(seed=0)
        ends = [env.step(np.zeros(7, dtype=np.float32))[3] for _ in range(3)]
        assert ends == [False, False, True]
    finally:
        env.close()
    with pytest.raises(VismanipError, match="not a shift"):
        gymnasium.make("vismanip/Lift-v0", image_size=16, randomization="nope")


TORCHRL_SNIPPET = """
import gymnasium
import vismanip

env = gymnasium.make("vismanip/Lift-v0", cameras=["agentview"], image_size=32)
from torchrl.envs import GymWrapper

rollout = GymWrapper(env).rollout(5)
print(tuple(rollout["agentview_image"].shape), tuple(rollout["next", "reward"].shape))
"""


@pytest.mark.sim
def test_the_readmes_torchrl_snippet_steps_the_env():
    """The README's torchrl snippet, in a fresh process: torchrl imports mujoco and triton,
    which must not undo vismanip's GL choice nor crash a process that rendered."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", TORCHRL_SNIPPET], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[0] == "(5, 32, 32, 3) (5, 1)"
