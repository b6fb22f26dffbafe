"""DAgger: β schedules, labelled segments, byte-stable aggregation, expert-driven rounds,
and a tiny 2-round run that survives a kill in the middle of a round."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from conftest import collect_lift, make_episode, run_cli, write_dataset

from vismanip.algos.dagger import DaggerEpisode, QueryConfig, beta_schedule, labeled_segments
from vismanip.data.hdf5 import append_demos, write_episode_file
from vismanip.data.validate import validate_dataset
from vismanip.envs.tasks import EnvConfig
from vismanip.errors import VismanipError
from vismanip.evaluation.metrics import gaussian_kl
from vismanip.policies import ImagePolicy, ImagePolicyConfig
from vismanip.policies.checkpoint import PolicyWeights
from vismanip.rollout.runner import EpisodeRunner, Scene


def test_beta_schedules():
    linear = beta_schedule("linear:3")
    assert [linear(i) for i in range(1, 6)] == pytest.approx([1, 2 / 3, 1 / 3, 0, 0])
    exponential = beta_schedule("exp:0.5")
    assert [exponential(i) for i in range(1, 4)] == [1.0, 0.5, 0.25]
    assert beta_schedule("constant:0.3")(7) == 0.3
    for bad in ("linear:0", "exp:2", "constant", "cosine:3", "linear:x"):
        with pytest.raises(VismanipError, match="beta="):
            beta_schedule(bad)


def test_labeled_segments_keep_robomimic_layout():
    episode = make_episode(steps=5, seed=0)
    a, b, c = (np.full(7, v) for v in (0.1, 0.2, 0.3))
    segments = labeled_segments(episode, [a, None, b, c, None])
    assert [len(s) for s in segments] == [1, 2]
    assert np.array_equal(segments[1].actions[0], b) and np.array_equal(segments[1].actions[1], c)
    frames = episode.observations["agentview_image"]
    # obs of step 2..3 plus next_obs of step 3 (= frame 4)
    assert len(segments[1].observations["agentview_image"]) == 3
    assert segments[1].observations["agentview_image"][0] is frames[2]
    assert segments[1].observations["agentview_image"][-1] is frames[4]
    assert labeled_segments(episode, [None] * 5) == []


def test_aggregation_keeps_earlier_rounds_byte_identical(tmp_path):
    dataset = tmp_path / "agg.hdf5"
    write_dataset(dataset, [5, 7, 6])

    def snapshot() -> dict[str, bytes]:
        with h5py.File(dataset, "r") as file:
            arrays: dict[str, bytes] = {}
            file.visititems(
                lambda name, item: (
                    arrays.__setitem__(name, item[()].tobytes())
                    if isinstance(item, h5py.Dataset) and name.startswith("data/")
                    else None
                )
            )
            return arrays

    before = snapshot()
    shards = []
    for index, steps in enumerate([4, 3]):
        shard = tmp_path / f"round_{index}.hdf5"
        write_episode_file(shard, make_episode(steps, seed=10 + index), index, "<mujoco/>")
        shards.append(shard)
    names = append_demos(dataset, shards, "round_1", labels=7)
    after = snapshot()
    assert names == ["demo_3", "demo_4"]
    assert {k: after[k] for k in before} == before  # every earlier byte unchanged
    with h5py.File(dataset, "r") as file:
        assert [n.decode() for n in file["mask/round_1"][()]] == names
        assert set(names) <= {n.decode() for n in file["mask/train"][()]}
        assert file["data"].attrs["total"] == 5 + 7 + 6 + 4 + 3
        assert file["data"].attrs["labels_round_1"] == 7
    assert validate_dataset(dataset) == []
    assert not list(tmp_path.glob("*.tmp"))


def test_gaussian_kl_grows_with_distance():
    rng = np.random.default_rng(0)
    expert = rng.normal(size=(500, 6))
    assert gaussian_kl(expert, expert) == pytest.approx(0.0, abs=1e-9)
    near = gaussian_kl(expert + 0.5, expert)
    far = gaussian_kl(expert + 2.0, expert)
    assert 0 < near < far


@pytest.mark.sim
def test_beta_one_executes_every_expert_action():
    config = ImagePolicyConfig(cameras=["agentview"], lowdim_keys=["robot0_eef_pos"])
    learner = ImagePolicy(config, 32, {"robot0_eef_pos": 3})
    scene = Scene(EnvConfig(task="lift", cameras=["agentview"], image_size=32))
    with EpisodeRunner(1) as runner:
        runner.set_policy(PolicyWeights.of(learner))
        tasks = [
            DaggerEpisode(0, 3, 1.0, QueryConfig(), scene, "scripted"),
            DaggerEpisode(1, 3, 0.0, QueryConfig(every=3), scene, "scripted"),
        ]
        (_, driven, driven_stats, _), (_, sparse, sparse_stats, _) = runner.run(tasks, ordered=True)
    # β = 1: the expert drove the whole episode, and labelled every step of it
    assert driven_stats["success"] and len(driven) == 1
    assert driven_stats["labels"] == driven_stats["length"] == len(driven[0]) > 0
    # β = 0, every 3rd step asked: one-step demos at steps 0, 3, 6, ...
    assert sparse_stats["labels"] == len(range(0, sparse_stats["length"], 3))
    assert all(len(segment) == 1 for segment in sparse)


@pytest.mark.sim
def test_two_rounds_survive_a_kill_mid_round(tmp_path):
    data, bc, run = tmp_path / "lift.hdf5", tmp_path / "bc", tmp_path / "dagger"
    collect_lift(data)
    run_cli(
        "train", f"data={data}", f"output_dir={bc}", "trainer.max_epochs=1", "task=lift",
        "rollout.every_n_epochs=0", "loader.batch_size=16",
    )  # fmt: skip
    command = [
        sys.executable, "-m", "vismanip.cli", "dagger", "--config", "configs/dagger/lift.yaml",
        f"init={bc / 'last.ckpt'}", f"output_dir={run}", "rounds=2", "episodes_per_round=3",
        "epochs_per_round=1", "eval_episodes=1", "workers=1", "loader.batch_size=16",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    marker = run / "round_1" / "episodes" / "episode_0000.json"
    deadline = time.time() + 400
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, "finished or crashed before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)  # mid-round: episodes left, nothing aggregated
    process.wait()
    assert not (run / "round_1" / "episodes" / "episode_0002.json").exists()

    run_cli("dagger", "--resume", str(run))
    history = json.loads((run / "dagger.json").read_text())["rounds"]
    assert [h["round"] for h in history] == [0, 1, 2]
    assert history[1]["beta"] == 1.0 and history[1]["rollout_success"] == 1.0
    assert history[2]["labels_total"] > history[1]["labels_total"] > history[0]["labels_total"]
    aggregated = run / "aggregated.hdf5"
    assert validate_dataset(aggregated) == []
    with h5py.File(aggregated, "r") as file:
        for k in (1, 2):
            names = file[f"mask/round_{k}"][()]
            steps = sum(int(file[f"data/{n.decode()}"].attrs["num_samples"]) for n in names)
            assert steps == file["data"].attrs[f"labels_round_{k}"] == history[k]["labels_round"]
    assert (run / "dagger.md").read_text().startswith("| round |")
    assert (run / "dagger.png").stat().st_size > 1000
    assert '<img class="plot" src="dagger.png"' in (run / "report.html").read_text()


def test_unknown_expert_is_one_clear_error():
    from vismanip.algos.dagger import expert_factory

    for spec in ("no_such_module:factory", "vismanip.experts:no_such_factory", "teleop"):
        with pytest.raises(VismanipError, match="expected 'scripted', 'checkpoint:PATH'"):
            expert_factory(spec, "lift")


def test_rounds_roll_out_in_another_scene_than_the_demos(tmp_path):
    """`--object-set all --clutter 4` (experiment 2's labelled upper bound): rounds and
    evaluations use that scene; an unknown set or object is one line."""
    from conftest import run_in_process

    from vismanip.algos.dagger import DaggerConfig, DaggerRun
    from vismanip.envs.objects import object_set
    from vismanip.policies.checkpoint import save_policy

    data = tmp_path / "demos.hdf5"
    write_dataset(data, [5, 6])
    init = tmp_path / "bc.ckpt"
    policy = ImagePolicy(
        ImagePolicyConfig(cameras=["agentview"], lowdim_keys=["robot0_eef_pos"], feature_dim=5),
        32,
        {"robot0_eef_pos": 3},
    )
    demos_scene = EnvConfig(
        task="lift", cameras=["agentview"], objects=object_set("train"), clutter=2
    )
    save_policy(init, policy, demos_scene, None)
    config = DaggerConfig(init=str(init), data=str(data), objects=object_set("all"), clutter=4)
    run = DaggerRun(config)
    assert run.scene.env.objects == object_set("all") and run.scene.env.clutter == 4
    kept = DaggerRun(DaggerConfig(init=str(init), data=str(data)))
    assert kept.scene.env.objects == object_set("train") and kept.scene.env.clutter == 2
    with pytest.raises(VismanipError, match="unknown object 'teapot'"):
        DaggerRun(DaggerConfig(init=str(init), data=str(data), objects=["teapot"]))
    status, _, err = run_in_process("dagger", "--object-set", "nope", f"init={init}")
    assert status != 0 and len(err.strip().splitlines()) == 1
    assert "unknown object set 'nope'" in err
