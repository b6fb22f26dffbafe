"""Object sets and clutter: every object loads and stands on the table, the expert grasps
them, splits are disjoint, clutter never overlaps and is seeded, bad names fail clearly."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import run_cli

from vismanip.envs import EnvConfig, VisionEnv
from vismanip.envs.objects import (
    CLEARANCE_M,
    DISTRACTORS,
    OBJECTS,
    PARKED_Z_M,
    object_set,
    place_without_overlap,
)
from vismanip.errors import VismanipError
from vismanip.experts import expert_actor
from vismanip.rollout.episode import rollout


def test_sets_are_disjoint_and_known():
    train, novel = set(object_set("train")), set(object_set("novel"))
    assert len(OBJECTS) >= 12
    assert train and novel and not train & novel
    assert set(object_set("all")) == train | novel
    assert not set(DISTRACTORS) & set(OBJECTS)
    # The novel split differs in shape, not only in colour.
    assert {OBJECTS[n].shape for n in novel} - {OBJECTS[n].shape for n in train}


def test_unknown_names_fail_with_the_valid_ones(tmp_path):
    out = str(tmp_path / "x.hdf5")
    result = run_cli("collect", "--object", "teapot", "--out", out, returncode=1)
    assert result.stderr.strip() == (
        "error: unknown object 'teapot' (objects); valid: " + ", ".join(OBJECTS)
    )
    result = run_cli("collect", "--object-set", "kitchen", "--out", out, returncode=1)
    assert result.stderr.strip() == "error: unknown object set 'kitchen'; valid: train, novel, all"
    with pytest.raises(VismanipError, match="available for lift, lift_perturbed, pick_place, not"):
        EnvConfig(task="pick_place_can", clutter=2).check()
    with pytest.raises(VismanipError, match="clutter must be between 0 and 6"):
        EnvConfig(clutter=7).check()


def _fake(name: str, radius: float) -> SimpleNamespace:
    return SimpleNamespace(name=name, horizontal_radius=radius)


def test_placement_keeps_clearance_and_is_seeded():
    objects = [_fake("target", 0.03)] + [_fake(f"d{i}", 0.035) for i in range(4)]
    extents = {obj.name: (-0.02, 0.02) for obj in objects}
    table = np.array([0.0, 0.0, 0.8])
    for seed in range(50):
        placed = place_without_overlap(objects, extents, np.random.default_rng(seed), table)
        again = place_without_overlap(objects, extents, np.random.default_rng(seed), table)
        assert all(np.array_equal(placed[n][0], again[n][0]) for n in placed)
        for i, a in enumerate(objects):
            for b in objects[i + 1 :]:
                gap = np.linalg.norm(placed[a.name][0][:2] - placed[b.name][0][:2])
                assert gap >= a.horizontal_radius + b.horizontal_radius + CLEARANCE_M - 1e-9
        assert np.allclose(placed["target"][0][2], 0.822)


@pytest.mark.sim
def test_every_object_loads_stands_and_clutter_is_seeded():
    env = VisionEnv(
        EnvConfig(cameras=["agentview"], image_size=32, objects=object_set("all"), clutter=4)
    )
    try:
        scene = env.env
        for name in object_set("all"):
            bottom, top = scene.extents[f"target_{name}"]
            assert -0.1 < bottom < 0 < top < 0.12, (name, bottom, top)
        seen_targets = set()
        for seed in range(12):
            obs = env.reset(seed)
            seen_targets.add(scene.target_name)
            data = scene.sim.data
            active = [
                name
                for name, body in scene.object_bodies.items()
                if data.body_xpos[body][2] > PARKED_Z_M / 2
            ]
            assert len(active) == 5  # the target and 4 distractors; the rest parked
            assert f"target_{scene.target_name}" in active
            placed = {name: data.body_xpos[scene.object_bodies[name]][:2].copy() for name in active}
            for _ in range(5):
                obs, *_ = env.step(np.zeros(7))
            # Standing on the table, not fallen through it or dropped from high.
            assert abs(obs["cube_pos"][2] - scene.rest_height()) < 0.01
            env.reset(seed)  # the same seed places everything the same way
            for name, xy in placed.items():
                assert np.allclose(data.body_xpos[scene.object_bodies[name]][:2], xy)
        assert len(seen_targets) >= 6
    finally:
        env.close()


def _objects_sampled_today(count: int) -> list[str]:
    """A different pair of objects each day, so every run stays short and all get covered."""
    day = datetime.date.today().toordinal()
    names = object_set("all")
    return [names[(day * count + i) % len(names)] for i in range(count)]


def _expert_succeeds(task: str, name: str, clutter: int, seed: int) -> bool:
    env = VisionEnv(
        EnvConfig(task=task, cameras=["agentview"], image_size=32, objects=[name], clutter=clutter)
    )
    try:
        return rollout(env, expert_actor(task, env), seed, record=False).success
    finally:
        env.close()


@pytest.mark.sim
@pytest.mark.parametrize("task", ["lift", "pick_place"])
@pytest.mark.parametrize("name", _objects_sampled_today(2))
def test_expert_handles_a_sample_of_objects_in_clutter(task, name):
    assert _expert_succeeds(task, name, clutter=4, seed=3)


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("task", ["lift", "pick_place"])
@pytest.mark.parametrize("name", list(OBJECTS))
def test_expert_handles_every_object(task, name):
    assert sum(_expert_succeeds(task, name, clutter=2, seed=seed) for seed in range(3)) == 3
