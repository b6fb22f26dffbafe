"""Rendered frames are real pictures, upright, from whichever GL backend was chosen."""

import numpy as np
import pytest

from vismanip.envs.rendering import (
    check_not_noise,
    check_probe_frame,
    ensure_gl_backend,
    render_probe_frame,
)
from vismanip.envs.tasks import EnvConfig
from vismanip.envs.vision_env import VisionEnv
from vismanip.errors import VismanipError


def test_frame_checks_reject_noise_flat_and_flipped_frames():
    rng = np.random.default_rng(0)
    assert "noise" in check_not_noise(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    assert "flat" in check_not_noise(np.zeros((64, 64, 3), np.uint8))
    upright = np.zeros((64, 64, 3), np.uint8)
    upright[:32, :, 0] = 200  # red on top
    upright[32:, :, 2] = 200  # blue below
    assert check_probe_frame(upright) is None
    assert "wrongly" in check_probe_frame(upright[::-1].copy())


@pytest.mark.sim
def test_chosen_backend_renders_the_probe_scene_upright():
    backend = ensure_gl_backend()
    assert backend in ("egl", "osmesa")
    assert check_probe_frame(render_probe_frame()) is None


@pytest.fixture(scope="module")
def lift_env():
    env = VisionEnv(
        EnvConfig(task="lift", cameras=["agentview", "robot0_eye_in_hand"], image_size=64)
    )
    yield env
    env.close()


@pytest.mark.sim
def test_lift_frames_are_real_and_upright(lift_env):
    obs = lift_env.reset(seed=0)
    frame = obs["agentview_image"]
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert check_not_noise(frame) is None
    # agentview looks down at the table: the bright white table fills the lower half and the
    # darker wall/robot the top rows; flipped, this inverts.
    brightness = frame.astype(float).mean(axis=(1, 2))
    assert brightness[40:].mean() > brightness[:8].mean() + 20
    # The red cube sits on the table, i.e. in the lower half of an upright image.
    red = (frame[..., 0] > 120) & (frame[..., 1] < 80) & (frame[..., 2] < 80)
    rows = np.nonzero(red)[0]
    assert rows.size > 0 and rows.mean() > 32
    assert check_not_noise(obs["robot0_eye_in_hand_image"]) is None


@pytest.mark.sim
def test_same_seed_same_frame_other_seed_other_frame(lift_env):
    first = lift_env.reset(seed=5)["agentview_image"]
    again = lift_env.reset(seed=5)["agentview_image"]
    other = lift_env.reset(seed=6)["agentview_image"]
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other.astype(int)).sum() > 0


@pytest.mark.sim
def test_unknown_camera_and_task_name_valid_choices():
    with pytest.raises(VismanipError, match="unknown camera 'wristcam'.*agentview"):
        VisionEnv(EnvConfig(task="lift", cameras=["wristcam"]))
    with pytest.raises(
        VismanipError,
        match="unknown task 'stack'; valid tasks: lift, lift_perturbed, pick_place, pick_place_can, pick_place_can_perturbed, square, square_perturbed",
    ):
        VisionEnv(EnvConfig(task="stack"))


@pytest.mark.sim
def test_second_renderer_on_the_same_model_still_draws_the_robot(lift_env):
    """The lean mesh swap must be idempotent (sim2real or eval may build another renderer)."""
    from vismanip.envs.rendering import CameraRenderer, RenderConfig

    lift_env.reset(seed=0)
    data = lift_env.env.sim.data._data
    first = lift_env.renderer.render(data)["agentview_image"]
    again = CameraRenderer(lift_env.env.sim.model._model, ["agentview"], 64, RenderConfig())
    try:
        np.testing.assert_array_equal(again.render(data)["agentview_image"], first)
    finally:
        again.close()
