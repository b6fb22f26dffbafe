"""Domain randomization: reproducible from the seed, inside its configured ranges, replayable
from a demo, and the held-out textures stay out of everything used for training."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import run_cli

from vismanip.config import load_config
from vismanip.envs import EnvConfig, VisionEnv
from vismanip.errors import VismanipError
from vismanip.evaluation.suites import SHIFT_SPLITS, shift_config
from vismanip.sim2real.randomization import (
    RandomizationConfig,
    randomize_scene,
    texture_image,
    texture_names,
)

TRAINING_PRESETS = sorted(Path("configs/randomization").glob("*.yaml"))
DEFAULT = Path("configs/randomization/default.yaml")
CAMERAS = ["agentview", "robot0_eye_in_hand"]


def randomized(env_config: EnvConfig, config: RandomizationConfig) -> VisionEnv:
    """A VisionEnv whose scenes `config` randomizes (as the rollout workers build them)."""
    env = VisionEnv(env_config)
    randomize_scene(env, config)
    return env


@pytest.mark.sim
def test_envs_and_sim2real_agree_on_the_surfaces():
    from vismanip.sim2real.randomization import SURFACES

    env = VisionEnv(EnvConfig(image_size=16))
    try:
        assert set(env.surface_geoms()) == set(SURFACES)
        assert all(env.surface_geoms()[name] for name in ("table", "robot", "object"))
    finally:
        env.close()


@pytest.fixture(scope="module")
def randomized_env():
    env = randomized(
        EnvConfig(cameras=CAMERAS, image_size=32), load_config(RandomizationConfig, DEFAULT)
    )
    yield env
    env.close()


@pytest.mark.sim
def test_same_seed_same_scene_and_frame_other_seed_other_frame(randomized_env):
    first = randomized_env.reset(3)
    params = randomized_env.randomization_events[0]["params"]
    randomized_env.reset(4)  # something else in between
    again = randomized_env.reset(3)
    assert randomized_env.randomization_events[0]["params"] == params
    for key in ("agentview_image", "robot0_eye_in_hand_image"):
        assert np.array_equal(first[key], again[key])
    other = randomized_env.reset(5)
    assert not np.array_equal(first["agentview_image"], other["agentview_image"])


@pytest.mark.sim
def test_object_placement_does_not_depend_on_randomization(randomized_env):
    """The same seed puts the cube in the same place with and without randomization, so
    a visual-shift split changes only how the scene looks."""
    plain = VisionEnv(EnvConfig(cameras=["agentview"], image_size=32))
    try:
        assert np.allclose(plain.reset(8)["cube_pos"], randomized_env.reset(8)["cube_pos"])
    finally:
        plain.close()


@pytest.mark.sim
def test_every_parameter_stays_inside_its_range(randomized_env):
    config = randomized_env.randomizer.config
    model = randomized_env.model
    nominal = randomized_env.randomizer._nominal
    allowed = {name for source in config.textures for name in texture_names(source)}
    for seed in range(40):
        randomized_env.reset(seed)
        params = randomized_env.randomization_events[0]["params"]
        assert set(params["surfaces"]) == set(config.surfaces)
        for look in params["surfaces"].values():
            assert all(0.0 <= c <= 1.0 for c in look["rgb"])
            assert look.get("texture", "photos/x").split("/")[0] != "heldout"
            assert look.get("texture", next(iter(allowed))) in allowed
        light = params["light"]
        for term in ("diffuse", "ambient", "specular"):
            low, high = getattr(config, f"light_{term}")
            tint = config.light_tint
            assert all(
                low * (1 - tint) - 1e-9 <= v <= min(1.0, high * (1 + tint)) for v in light[term]
            )
            assert np.allclose(getattr(model, f"light_{term}")[0], light[term])
        moved = np.linalg.norm(np.array(light["pos"]) - nominal["light_pos"][0])
        assert config.light_move_m[0] - 1e-9 <= moved <= config.light_move_m[1] + 1e-9
        turned = np.degrees(
            np.arccos(np.clip(np.dot(light["dir"], nominal["light_dir"][0]), -1, 1))
        )
        assert turned <= config.light_turn_deg[1] + 1e-6
        for name, pose in params["cameras"].items():
            index = model.camera(name).id
            shift = np.linalg.norm(np.array(pose["pos"]) - nominal["cam_pos"][index])
            assert config.camera_move_m[0] - 1e-9 <= shift <= config.camera_move_m[1] + 1e-9
            dot = abs(np.dot(pose["quat"], nominal["cam_quat"][index]))
            angle = np.degrees(2 * np.arccos(min(1.0, dot)))
            assert config.camera_turn_deg[0] - 1e-6 <= angle <= config.camera_turn_deg[1] + 1e-6
            fov_delta = pose["fovy"] - nominal["cam_fovy"][index]
            assert config.camera_fovy_deg[0] - 1e-9 <= fov_delta <= config.camera_fovy_deg[1] + 1e-9
            assert np.allclose(model.cam_pos[index], pose["pos"])
        for name, value in params["dynamics"].items():
            low, high = getattr(config, name)
            assert low <= value <= high
        bodies = randomized_env.randomizer.object_bodies
        assert np.allclose(
            model.body_mass[bodies], nominal["body_mass"][bodies] * params["dynamics"]["mass_scale"]
        )


def test_heldout_textures_never_reach_training_presets():
    heldout = set(texture_names("heldout"))
    training = set(texture_names("photos"))
    assert heldout and training and not heldout & training
    assert TRAINING_PRESETS, "no training presets found"
    for preset in TRAINING_PRESETS:
        config = load_config(RandomizationConfig, preset)
        config.check(allow_heldout=False)  # raises if a preset names the held-out source
        assert "heldout" not in config.textures


def test_collect_refuses_heldout_textures(tmp_path):
    preset = "configs/randomization/shift/unseen-textures.yaml"
    out = tmp_path / "x.hdf5"
    result = run_cli(
        "collect", "--episodes", "1", f"randomization={preset}", "--out", str(out), returncode=1
    )
    assert result.stderr.strip().startswith("error: held-out textures are for evaluation only")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_shift_splits_load_and_all_combines_them():
    configs = {name: shift_config(name) for name in SHIFT_SPLITS}
    assert configs["unseen-textures"].textures == ["heldout"]
    assert configs["camera"].camera_move_m and not configs["camera"].surfaces
    assert configs["lighting"].light_move_m and not configs["lighting"].camera_move_m
    combined = shift_config("all")
    assert combined.textures == ["heldout"]
    assert combined.camera_move_m == configs["camera"].camera_move_m
    assert combined.light_tint == configs["lighting"].light_tint
    assert shift_config("none") is None
    with pytest.raises(VismanipError, match="unknown shift 'fog'; valid: none, unseen-textures"):
        shift_config("fog")


def test_procedural_textures_are_seeded_and_bad_presets_fail():
    for name in texture_names("procedural"):
        image = texture_image(name, 3)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert np.array_equal(image, texture_image(name, 3))
        assert not np.array_equal(image, texture_image(name, 4))
    with pytest.raises(VismanipError, match="unknown randomization surface 'sky'"):
        RandomizationConfig(surfaces=["sky"]).check()
    with pytest.raises(VismanipError, match=r"camera_move_m must be \[low, high\]"):
        RandomizationConfig(camera_move_m=[0.2, 0.1]).check()


@pytest.mark.sim
def test_collected_demo_stores_its_scene_and_replays_it(tmp_path):
    out = tmp_path / "dr.hdf5"
    run_cli(
        "collect",
        "--episodes",
        "2",
        "--workers",
        "1",
        "--size",
        "32",
        "--camera",
        "agentview",
        f"randomization={DEFAULT}",
        "--out",
        str(out),
    )
    env = randomized(
        EnvConfig(cameras=["agentview"], image_size=32), load_config(RandomizationConfig, DEFAULT)
    )
    try:
        with h5py.File(out, "r") as file:
            looks = []
            for name in ("demo_0", "demo_1"):
                demo = file["data"][name]
                events = json.loads(demo.attrs["randomization"])
                assert events[0]["step"] == 0
                looks.append(events[0]["params"]["surfaces"])
                obs = env.reset(int(demo.attrs["seed"]), randomization=events[0]["params"])
                assert np.array_equal(obs["agentview_image"], demo["obs/agentview_image"][0])
            assert looks[0] != looks[1]
    finally:
        env.close()


@pytest.mark.sim
def test_every_steps_redraws_looks_but_keeps_cameras():
    config = RandomizationConfig(surfaces=["table"], camera_move_m=[0.01, 0.02], every_steps=3)
    env = randomized(EnvConfig(cameras=["agentview"], image_size=32), config)
    try:
        env.reset(0)
        camera = env.model.cam_pos[env.model.camera("agentview").id].copy()
        for _ in range(6):
            env.step(np.zeros(7))
        assert [event["step"] for event in env.randomization_events] == [0, 3, 6]
        looks = [event["params"]["surfaces"]["table"] for event in env.randomization_events]
        assert looks[0] != looks[1] != looks[2]
        assert "cameras" not in env.randomization_events[1]["params"]
        model = env.model
        assert np.array_equal(model.cam_pos[model.camera("agentview").id], camera)
    finally:
        env.close()


@pytest.mark.sim
def test_surface_prob_keeps_the_real_look_in_some_episodes():
    config = load_config(RandomizationConfig, Path("configs/randomization/object_colors_half.yaml"))
    env = randomized(EnvConfig(cameras=["agentview"], image_size=32), config)
    try:
        model = env.model
        geoms = env.randomizer.surface_geoms["object"]
        nominal = env.randomizer._nominal["geom_rgba"][geoms]
        recoloured = []
        for seed in range(16):
            env.reset(seed)
            looks = env.randomization_events[0]["params"]["surfaces"]
            recoloured.append("object" in looks)
            # Skipped: the object looks exactly as modelled; drawn: it wears the new colour.
            assert np.array_equal(model.geom_rgba[geoms], nominal) != recoloured[-1]
        assert 3 <= sum(recoloured) <= 13  # both kinds of episode occur at p = 0.5
    finally:
        env.close()
    with pytest.raises(VismanipError, match=r"surface_prob must be in \[0, 1\]"):
        RandomizationConfig(surfaces=["object"], surface_prob=1.5).check()
