"""GAIL: the discriminator learns, the gradient penalty and rewards behave, DAC transitions
end in absorbing states, bad input is one line, and a tiny run resumes after a kill and
writes a checkpoint that eval and export accept."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import collect_lift, run_cli, write_dataset
from tensordict import TensorDict

from vismanip.algos.gail.configuration import GailConfig
from vismanip.algos.gail.learner import GailLearner, effective_sample_share
from vismanip.algos.gail.rollouts import OBJECT_AXES_COLUMNS, STATE_DIM
from vismanip.algos.gail.run import GailRun
from vismanip.algos.gail.transitions import transitions_td
from vismanip.envs.tasks import EnvConfig
from vismanip.errors import VismanipError
from vismanip.policies import ImagePolicy, ImagePolicyConfig
from vismanip.policies.checkpoint import load_policy, save_policy

OBS_DIM, FEATURE_DIM = 4, 8


def tiny_policy() -> ImagePolicy:
    config = ImagePolicyConfig(
        cameras=["agentview"], lowdim_keys=["robot0_eef_pos"], feature_dim=5, hidden_dims=[16]
    )
    return ImagePolicy(config, 32, {"robot0_eef_pos": 3})  # encoding: 5 + 3 = 8 features


def tiny_gail_config(tmp_path: Path, **fields) -> GailConfig:
    """A GAIL config on two tiny demos and a tiny BC checkpoint, D on the encoder's features."""
    data, init = tmp_path / "demos.hdf5", tmp_path / "bc.ckpt"
    write_dataset(data, [5, 6])
    save_policy(init, tiny_policy(), EnvConfig(task="lift", cameras=["agentview"]), None)
    config = GailConfig(
        init=str(init), demos=str(data), output_dir=str(tmp_path / "gail"), **fields
    )
    config.disc.input = "features"
    return config


def toy_transitions(count: int, centre: float, action: float, seed: int) -> TensorDict:
    """Timeout episodes (no absorbing states) around `centre` with a constant action."""
    rng = np.random.default_rng(seed)
    steps = count - 1
    return transitions_td(
        rng.normal(size=(count, FEATURE_DIM)).astype(np.float32),
        (centre + 0.3 * rng.normal(size=(count, OBS_DIM))).astype(np.float32),
        np.full((steps, 7), action, dtype=np.float32),
        np.zeros(steps, dtype=bool),
        np.zeros(steps, dtype=np.float32),
    )


def toy_frames(count: int, brightness: float, seed: int) -> np.ndarray:
    """(count, 3, 16, 16) uint8 frames: noise around `brightness` in [0, 1]."""
    rng = np.random.default_rng(seed)
    pixels = 255 * (brightness + 0.15 * rng.normal(size=(count, 3, 16, 16)))
    return pixels.clip(0, 255).astype(np.uint8)


def toy_learner(**disc) -> GailLearner:
    """Expert transitions around +1 (bright frames), the policy's around -1 (dark)."""
    config = GailConfig()
    config.learner.batch_size = 64
    for key, value in disc.items():
        setattr(config.disc, key, value)
    expert = toy_transitions(200, centre=1.0, action=0.5, seed=0)
    policy = toy_transitions(200, centre=-1.0, action=-0.5, seed=1)
    if config.disc.input == "image":
        expert["frames"] = torch.as_tensor(toy_frames(199, 0.7, seed=2))
        policy["frames"] = torch.as_tensor(toy_frames(199, 0.3, seed=3))
    learner = GailLearner(tiny_policy(), OBS_DIM, expert, config)
    learner.add(policy)
    return learner


@pytest.mark.parametrize(
    "pairs", ["state_action", "state", pytest.param("state_next", marks=pytest.mark.slow)]
)
def test_discriminator_separates_expert_from_policy_transitions(pairs):
    torch.manual_seed(0)
    learner = toy_learner(pairs=pairs)
    stats = [learner.update() for _ in range(150)]
    assert stats[-1]["disc_accuracy_expert"] > 0.9
    assert stats[-1]["disc_accuracy_policy"] > 0.9
    # ... and the reward follows: expert-like transitions earn more
    expert_reward = learner.reward(learner.expert[:64]).mean()
    policy_reward = learner.reward(learner.replay.sample()).mean()
    assert expert_reward > policy_reward + 1.0


def test_a_discriminator_on_frames_separates_expert_from_policy_frames():
    """`disc.input=image`: D reads small frames (randomly shifted alike on both sources)
    and the absorbing indicator; the critic keeps reading the low-dim observation. A D step
    takes `disc.batch_size` rows of each source."""
    torch.manual_seed(0)
    learner = toy_learner(input="image", image_size=16, image_shift=2, batch_size=32)
    sizes: list[int] = []
    learner.gail_loss.register_forward_pre_hook(lambda _, args: sizes.append(len(args[0])))
    stats = [learner.update() for _ in range(100)]
    assert set(sizes) == {32} and learner.config.learner.batch_size > 32
    assert stats[-1]["disc_accuracy_expert"] > 0.9
    assert stats[-1]["disc_accuracy_policy"] > 0.9
    expert_reward = learner.reward(learner.expert[:64]).mean()
    policy_reward = learner.reward(learner.replay.sample()).mean()
    assert expert_reward > policy_reward + 1.0
    learner.config.disc.batch_size = 1
    with pytest.raises(VismanipError, match="disc.batch_size must be 0"):
        learner.config.check()


def test_expert_frames_are_the_demos_cameras_downsampled(tiny_dataset):
    from vismanip.algos.gail.expert import expert_transitions

    path, episodes = tiny_dataset
    policy = tiny_policy()
    expert = expert_transitions(str(path), policy, "lift", "features", frame_size=16)
    assert expert["frames"].shape == (len(expert), 3, 16, 16)
    assert expert["frames"].dtype == torch.uint8
    first = torch.as_tensor(episodes[0].observations["agentview_image"][0]).permute(2, 0, 1).float()
    mean_colour = first.mean((1, 2))  # area downsampling keeps each channel's mean
    torch.testing.assert_close(
        expert["frames"][0].float().mean((1, 2)), mean_colour, atol=1.0, rtol=0
    )
    absorbing = expert["observation"][:, -1] == 1
    assert bool(absorbing.any()) and int(expert["frames"][absorbing].max()) == 0
    assert "frames" not in expert_transitions(str(path), policy, "lift", "features").keys()


def test_augmented_copies_give_the_actor_augmented_demo_features(tiny_dataset):
    """learner.demo_augmented_copies: each demo transition k times, its features encoded
    from augmented frames each time; D's observation stays the plain frames' features."""
    from vismanip.algos.gail.expert import expert_transitions
    from vismanip.sim2real.augmentation import AugmentationConfig, KorniaAugment

    path, _ = tiny_dataset
    policy = tiny_policy().eval()
    plain = expert_transitions(str(path), policy, "lift", "features")
    torch.manual_seed(0)
    augment = KorniaAugment(AugmentationConfig(), policy.image_size, len(policy.image_keys))
    copies = expert_transitions(
        str(path), policy, "lift", "features", augmented_copies=2, augment=augment
    )
    assert len(copies) == 2 * len(plain)
    rows = 6  # demo 0: 5 steps and its absorbing loop, then its second copy
    first, second = copies[:rows], copies[rows : 2 * rows]
    torch.testing.assert_close(first["observation"], plain[:rows]["observation"])
    torch.testing.assert_close(second["observation"], plain[:rows]["observation"])
    torch.testing.assert_close(first["action"], second["action"])
    real = first["observation"][:, -1] == 0  # (the absorbing loop's features are zeros)
    assert not torch.allclose(first["features"][real], plain[:rows]["features"][real])
    assert not torch.allclose(first["features"][real], second["features"][real])
    proprio = slice(-3, None)  # the tiny policy's robot0_eef_pos: not augmented
    torch.testing.assert_close(first["features"][:, proprio], second["features"][:, proprio])

    config = GailConfig()
    config.learner.demo_augmented_copies = 4
    config.disc.input = "image"
    with pytest.raises(VismanipError, match="demo_augmented_copies needs"):
        config.check()


def test_demo_fraction_puts_demos_in_the_critics_batches(monkeypatch):
    torch.manual_seed(0)
    learner = toy_learner()
    learner.config.learner.demo_fraction = 0.5
    seen = []
    real_loss = learner.sac_loss.forward
    monkeypatch.setattr(learner.sac_loss, "forward", lambda td: seen.append(td) or real_loss(td))
    learner.update()
    observations = seen[0]["observation"][:, 0]  # expert states sit around +1, policy's at -1
    assert len(observations) == 64
    assert int((observations > 0).sum()) in range(28, 37)  # half, give or take the noise


def test_gradient_penalty_is_added_on_interpolates():
    torch.manual_seed(0)
    with_penalty, without = toy_learner(grad_penalty=10.0), toy_learner(grad_penalty=0.0)
    batch = with_penalty.replay.sample()
    pairs = TensorDict(
        {
            "observation": with_penalty.expert["observation"][:64],
            "action": with_penalty.expert["action"][:64],
            "collector_observation": batch["observation"],
            "collector_action": batch["action"],
        },
        [64],
    )
    assert float(with_penalty.gail_loss(pairs)["gp_loss"]) > 0
    assert "gp_loss" not in without.gail_loss(pairs).keys()


@pytest.mark.parametrize("kind", ["gail", "airl"])
def test_reward_grows_with_the_discriminator_output(kind):
    learner = toy_learner(reward=kind)
    batch = learner.replay.sample()
    rewards = []
    for bias in (-3.0, 0.0, 3.0):  # D = sigmoid(bias): 0.05, 0.5, 0.95
        with torch.no_grad():
            last = learner.discriminator.net[-1]
            last.weight.zero_()
            last.bias.fill_(bias)
        rewards.append(float(learner.reward(batch).mean()))
    assert rewards[0] < rewards[1] < rewards[2]
    if kind == "gail":
        assert rewards[0] > 0  # -log(1 - D): always positive
    else:
        assert rewards[0] < 0 < rewards[2] and abs(rewards[1]) < 1e-5


def test_the_goal_step_leads_to_an_absorbing_state_that_loops():
    steps = 3
    success = np.array([False, False, True])
    td = transitions_td(
        np.ones((steps + 1, FEATURE_DIM), np.float32),
        np.ones((steps + 1, OBS_DIM), np.float32),
        np.zeros((steps, 7), np.float32),
        success,
        np.array([0, 0, 1], np.float32),
    )
    assert len(td) == steps + 1  # + absorbing -> absorbing
    indicator = td["next", "observation"][:, -1]
    assert indicator.tolist() == [0, 0, 1, 1]
    assert td["observation"][:, -1].tolist() == [0, 0, 0, 1]
    assert not td["next", "done"].any() and not td["next", "terminated"].any()


def test_checkpoints_keep_the_demos_objects_while_gail_explores_others(tmp_path):
    """Experiment 2: GAIL interacts with every object among 4 distractors; its checkpoints
    keep the demos' objects and clutter, so the generalization suite still calls the
    objects without demos novel."""
    from vismanip.envs.objects import object_set
    from vismanip.evaluation.suites import generalization_splits

    data = tmp_path / "demos.hdf5"
    write_dataset(data, [5, 6])
    init = tmp_path / "bc.ckpt"
    trained = EnvConfig(task="lift", cameras=["agentview"], objects=object_set("train"), clutter=2)
    save_policy(init, tiny_policy(), trained, None)
    config = GailConfig(
        init=str(init), demos=str(data), output_dir=str(tmp_path / "gail"), clutter=4
    )
    config.objects = object_set("all")
    config.disc.input = "features"
    run = GailRun(config)
    assert run.env_config.objects == object_set("all") and run.env_config.clutter == 4
    assert run.checkpoint_env.objects == object_set("train") and run.checkpoint_env.clutter == 2
    splits = generalization_splits(run.checkpoint_env)
    assert splits["novel"].env.objects == object_set("novel")


def test_gail_can_floor_the_initial_policys_proprio_std(tmp_path):
    """init_lowdim_std_floor: a BC policy trained without the floor starts GAIL with it,
    and only on the keys named."""
    data = tmp_path / "demos.hdf5"
    write_dataset(data, [5, 6])
    init = tmp_path / "bc.ckpt"
    policy = tiny_policy()
    policy.set_normalization(np.zeros(3), np.array([0.003, 0.2, 0.01]))
    save_policy(init, policy, EnvConfig(task="lift", cameras=["agentview"]), None)
    config = GailConfig(init=str(init), demos=str(data), output_dir=str(tmp_path / "gail"))
    config.disc.input = "features"
    assert GailRun(config).policy.lowdim_std[0] == pytest.approx(0.003)  # 0: init's own
    config.init_lowdim_std_floor = 0.05
    config.init_lowdim_std_floor_keys = ["robot0_eef_pos"]
    run = GailRun(config)
    torch.testing.assert_close(run.policy.lowdim_std, torch.tensor([0.05, 0.2, 0.05]))
    assert run.policy.config.lowdim_std_floor == 0.05  # best.ckpt describes it
    config.init_lowdim_std_floor_keys = ["robot0_eef_quat"]  # the tiny policy lacks it
    with pytest.raises(VismanipError, match="robot0_eef_quat.*must be among"):
        GailRun(config)
    config.init_lowdim_std_floor = -1.0
    with pytest.raises(VismanipError, match="init_lowdim_std_floor must be >= 0"):
        GailRun(config)


def test_guard_seen_evaluates_in_the_demos_own_scene(tmp_path, monkeypatch):
    """guard_seen: a run that interacts among more distractors (or other objects) is also
    scored in the demos' scene, and best.ckpt skips evaluations where that fell."""
    from vismanip.algos.gail.run import _Progress

    config = tiny_gail_config(tmp_path, task="lift", clutter=4, guard_seen=True)
    run = GailRun(config)
    assert run.scene.env.clutter == 4 and run.guard_scenes["seen"].env.clutter == 0
    outcomes = {4: iter([0.2, 0.6, 0.4]), 0: iter([0.9, 0.7, 0.9])}  # (clutter 4, demos')

    def success(runner, scene):
        return {
            "success_rate": next(outcomes[scene.env.clutter]),
            "success_ci95": [0.0, 1.0],
            "episode_length": 100.0,
        }

    class Runner:
        def set_policy(self, weights):
            pass

    monkeypatch.setattr(run, "_success", success)
    monkeypatch.setattr(run, "_log", lambda metrics, env_steps: None)
    run.dir.mkdir()
    progress, chosen = _Progress(), []
    for step in range(3):
        progress.env_steps = 1000 * step
        run._evaluate(Runner(), progress)
        chosen.append(progress.best_env_steps)
    assert chosen == [0, 0, 2000]  # 0.6 at 1000 lost 20 points in the demos' scene
    assert progress.history[2]["guard_tasks"]["seen"]["success_rate"] == 0.9

    config.clutter = -1  # interacting in the demos' own scene: nothing to guard
    with pytest.raises(VismanipError, match="guard_seen=true: the interaction scene already"):
        GailRun(config)


def test_policy_average_is_what_evaluations_and_checkpoints_hold(tmp_path, monkeypatch):
    """learner.policy_average: the exploring policy keeps the latest weights, while the
    evaluations and best.ckpt get their exponential moving average (decay per iteration)."""
    from vismanip.algos.gail.run import _Progress

    config = tiny_gail_config(tmp_path)
    config.learner.policy_average = 0.5
    run = GailRun(config)
    bias = run.policy.head.bias  # (the tiny policy's last layer)
    start = bias.detach().clone()
    with torch.no_grad():
        bias += 1.0  # the first iteration's updates
    run.average.update_parameters(run.policy)  # the first average is the weights themselves
    with torch.no_grad():
        bias += 1.0  # the second's
    run.average.update_parameters(run.policy)
    torch.testing.assert_close(run.evaluated_policy.head.bias, start + 1.5)
    torch.testing.assert_close(bias.detach(), start + 2.0)  # what explores: the latest

    evaluated: list[torch.Tensor] = []

    class Runner:
        def set_policy(self, weights):
            evaluated.append(weights.build().head.bias.detach())

    monkeypatch.setattr(
        run,
        "_success",
        lambda runner, scene: {
            "success_rate": 0.5, "success_ci95": [0.0, 1.0], "episode_length": 100.0
        },
    )  # fmt: skip
    monkeypatch.setattr(run, "_log", lambda metrics, env_steps: None)
    run.dir.mkdir()
    run._evaluate(Runner(), _Progress())
    torch.testing.assert_close(evaluated[0], start + 1.5)
    saved = load_policy(run.dir / "best.ckpt").weights.build().head.bias
    torch.testing.assert_close(saved, start + 1.5)

    config.learner.policy_average = 1.0  # would never move
    with pytest.raises(VismanipError, match=r"learner.policy_average must be in \[0, 1\)"):
        GailRun(config)


def test_best_checkpoint_skips_evaluations_where_a_guard_task_fell(tmp_path, monkeypatch):
    """guard_tasks: each evaluation also scores the clean task; best.ckpt follows the
    interaction task's success only where the clean one stays within guard_max_drop of
    the start's, and gail.md marks the evaluation best.ckpt holds."""
    from vismanip.algos.gail.run import _Progress
    from vismanip.evaluation.report import gail_table

    config = tiny_gail_config(
        tmp_path, task="lift_perturbed", guard_tasks=["lift"], guard_max_drop=0.05
    )
    run = GailRun(config)
    assert run.guard_scenes["lift"].env.task == "lift" and run.scene.env.task == "lift_perturbed"
    # (success on lift_perturbed, on lift) at each evaluation
    outcomes = iter([(0.0, 0.9), (0.5, 0.8), (0.3, 0.85), (0.6, 0.7), (0.4, 0.9)])
    current: dict[str, float] = {}

    def success(runner, scene):
        if scene.env.task == "lift_perturbed":
            current["perturbed"], current["lift"] = next(outcomes)
        rate = current["perturbed" if scene.env.task == "lift_perturbed" else "lift"]
        return {"success_rate": rate, "success_ci95": [0.0, 1.0], "episode_length": 100.0}

    class Runner:
        def set_policy(self, weights):
            pass

    monkeypatch.setattr(run, "_success", success)
    logged: list[dict] = []
    monkeypatch.setattr(run, "_log", lambda metrics, env_steps: logged.append(metrics))
    run.dir.mkdir()
    progress = _Progress()
    chosen = []
    for step in range(5):
        progress.env_steps = 1000 * step
        run._evaluate(Runner(), progress)
        chosen.append(progress.best_env_steps)
    # 0.5 at 1000 loses 10 clean points (out); 0.3 at 2000 loses 5 (in); 0.6 loses 20 (out)
    assert chosen == [0, 0, 2000, 2000, 4000]
    assert progress.history[1]["guard_tasks"]["lift"]["success_rate"] == 0.8
    assert logged[1] == {"eval/success_rate": 0.5, "eval/lift/success_rate": 0.8}
    table = gail_table(progress.history, progress.best_env_steps)
    assert "lift success (95% CI)" in table.splitlines()[0]
    assert "| 4000 (best.ckpt) |" in table and "| 1000 |" in table

    config.guard_tasks = ["pick_place_can"]
    with pytest.raises(VismanipError, match="guard task 'pick_place_can' runs robosuite's"):
        GailRun(config)
    config.guard_tasks = ["lfit"]
    with pytest.raises(VismanipError, match="unknown task 'lfit'"):
        GailRun(config)
    config.guard_tasks, config.guard_max_drop = ["lift"], 5.0
    with pytest.raises(VismanipError, match=r"guard_max_drop must be in \[0, 1\]"):
        GailRun(config)


def test_resuming_a_learner_saved_with_other_shapes_is_one_line(tmp_path):
    """A run folder from another config or version (e.g. the state's width changed)."""
    config = tiny_gail_config(tmp_path)
    (tmp_path / "gail").mkdir()
    saved = {"learner": {"discriminator.net.0.weight": torch.zeros(256, 19)}}
    torch.save(saved, tmp_path / "gail" / "learner.pt")
    with pytest.raises(VismanipError, match="networks do not fit this config") as error:
        GailRun(config).run(resume=True)
    assert "\n" not in str(error.value) and "start a new run" in str(error.value)


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    data = tmp_path / "demos.hdf5"
    write_dataset(data, [5, 6, 7])  # has no obs/cube_pos (no sim state)
    init = tmp_path / "bc.ckpt"
    save_policy(init, tiny_policy(), EnvConfig(task="lift", cameras=["agentview"]), None)
    out = tmp_path / "gail"

    def run(**settings) -> str:
        config = GailConfig(init=str(init), demos=str(data), output_dir=str(out))
        for key, value in settings.items():
            target = config.disc if key.startswith("disc_") else config
            setattr(target, key.removeprefix("disc_"), value)
        with pytest.raises(VismanipError) as error:
            GailRun(config).run()
        assert "\n" not in str(error.value)
        return str(error.value)

    assert "demos have no obs/cube_pos" in run()
    assert "disc.input=features" in run()
    assert "disc.input must be one of state, features, image, not 'pixels'" in run(
        disc_input="pixels"
    )
    assert "disc.input=image reads one frame per step" in run(
        disc_input="image", disc_pairs="state_next"
    )
    assert "env_steps must be at least 1" in run(env_steps=0)
    assert "not found: pass demos=PATH" in run(demos=str(tmp_path / "missing.hdf5"))
    other = tmp_path / "wide.ckpt"
    wide = ImagePolicy(ImagePolicyConfig(cameras=["robot0_eye_in_hand"], lowdim_keys=[]), 32, {})
    save_policy(other, wide, EnvConfig(task="lift", cameras=["robot0_eye_in_hand"]), None)
    assert "no obs/robot0_eye_in_hand_image" in run(init=str(other), disc_input="features")
    assert "demos of Lift, but task 'pick_place_can' runs PickPlaceCan" in run(
        task="pick_place_can", disc_input="features"
    )
    assert not out.exists()


@pytest.mark.sim
def test_tiny_gail_resumes_after_a_kill_and_its_checkpoint_evaluates_and_exports(tmp_path):
    data, bc, run = tmp_path / "lift.hdf5", tmp_path / "bc", tmp_path / "gail"
    collect_lift(data)
    run_cli(
        "train", f"data={data}", f"output_dir={bc}", "trainer.max_epochs=1", "task=lift",
        "rollout.every_n_epochs=0", "loader.batch_size=16",
    )  # fmt: skip
    command = [
        sys.executable, "-m", "vismanip.cli", "gail", "--config", "configs/gail/lift_iql.yaml",
        f"init={bc / 'last.ckpt'}", f"output_dir={run}", "task=lift_perturbed",
        "env_steps=1200", "episodes_per_iteration=2", "workers=2", "eval_every=600",
        "eval_episodes=1", "learner.warmup_steps=50", "learner.actor_start_steps=300",
        "learner.batch_size=32", "guard_tasks=[lift]",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    second_shard = run / "replay" / "iter_000001.pt"
    deadline = time.time() + 400
    while not second_shard.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, "finished or crashed before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = torch.load(run / "learner.pt", weights_only=True)["progress"]
    assert before["iteration"] >= 1

    run_cli("gail", "--resume", str(run))
    record = json.loads((run / "gail.json").read_text())
    steps = [entry["env_steps"] for entry in record["iterations"]]
    assert steps == sorted(steps) and steps[-1] >= 1200  # continued, not restarted
    assert len(steps) == len(set(steps)) and steps[0] == record["iterations"][0]["env_steps"]
    assert [e["env_steps"] for e in record["evaluations"]][0] == 0
    assert all("lift" in e["guard_tasks"] for e in record["evaluations"])  # the clean task too
    assert record["best_env_steps"] in [e["env_steps"] for e in record["evaluations"]]
    for name in (
        "best.ckpt",
        "last.ckpt",
        "gail.md",
        "gail.png",
        "report.html",
        "logs/metrics.csv",
    ):
        assert (run / name).exists(), name
    with (run / "logs" / "metrics.csv").open() as file:  # the rows from before the kill too
        logged = [int(row["env_steps"]) for row in csv.DictReader(file) if row.get("env_steps")]
    assert logged == steps

    result = run_cli("eval", str(run / "best.ckpt"), "--episodes", "1", "--task", "lift")
    assert "success" in result.stdout
    run_cli("export", str(run / "best.ckpt"), "--out", str(tmp_path / "gail.pt"), "--samples", "8")
    assert (tmp_path / "gail.pt").stat().st_size > 1000

    def short_run(output: Path, preset: str, *overrides: str) -> None:
        """300 env steps from the same BC policy, one evaluation episode."""
        run_cli(
            "gail", "--config", f"configs/gail/{preset}.yaml", f"init={bc / 'last.ckpt'}",
            f"output_dir={output}", "task=lift_perturbed", "env_steps=300",
            "episodes_per_iteration=2", "workers=2", "eval_every=300", "eval_episodes=1",
            "learner.warmup_steps=50", "learner.batch_size=32", *overrides,
        )  # fmt: skip

    # The same from D on camera frames (for demos without sim state): the replay keeps them.
    frames_run = tmp_path / "gail_frames"
    short_run(frames_run, "lift", "disc.input=image", "disc.pairs=state", "disc.image_size=24")
    shard = torch.load(frames_run / "replay" / "iter_000000.pt", weights_only=True)
    assert shard["frames"].shape[1:] == (3, 24, 24)  # collect_lift's one camera, RGB
    assert shard["observation"].shape[1] != STATE_DIM + 1  # the critic reads the frozen features
    iterations = json.loads((frames_run / "gail.json").read_text())["iterations"]
    assert "disc_accuracy_expert" in iterations[-1]

    # The on-policy learner: its episodes carry each draw before the tanh for PPO's ratio.
    ppo_run = tmp_path / "gail_ppo"
    short_run(
        ppo_run, "lift", "learner.type=ppo", "learner.actor_start_steps=0",
        "learner.ppo.minibatch_size=64",
    )  # fmt: skip
    iterations = json.loads((ppo_run / "gail.json").read_text())["iterations"]
    assert iterations[-1]["ppo_minibatches_run"] == 1.0 and iterations[-1]["ppo_kl"] > 0

    # The whole policy from frames (`learner.end_to_end`): the replay keeps the policy's
    # own inputs, and the camera encoder moves off BC's (last.ckpt: the policy's average).
    e2e_run = tmp_path / "gail_e2e"
    short_run(
        e2e_run, "lift_iql", "learner.actor_start_steps=0", "learner.end_to_end.steps=2",
        "learner.end_to_end.batch_size=8", "learner.policy_average=0.9",
    )  # fmt: skip
    average = torch.load(e2e_run / "learner.pt", weights_only=True)["policy_average"]
    assert average["n_averaged"] >= 1  # kept for --resume
    shard = torch.load(e2e_run / "replay" / "iter_000000.pt", weights_only=True)
    assert shard["policy_obs"]["agentview_image"].dtype == torch.uint8
    trained, initial = (
        load_policy(path).weights.build().encoders[0].trunk[0].weight
        for path in (e2e_run / "last.ckpt", bc / "last.ckpt")
    )
    assert not torch.equal(trained, initial)
    iterations = json.loads((e2e_run / "gail.json").read_text())["iterations"]
    assert "bc_loss" in iterations[-1] and "critic_loss" in iterations[-1]


def test_ppo_learner_trains_on_whole_episodes():
    from vismanip.algos.gail.learner import PpoGailLearner
    from vismanip.algos.gail.transitions import episode_td

    torch.manual_seed(0)
    config = GailConfig()
    config.learner.type = "ppo"
    config.learner.ppo.minibatch_size = 32
    expert = toy_transitions(200, centre=1.0, action=0.5, seed=0)
    learner = PpoGailLearner(tiny_policy(), OBS_DIM, expert, config)
    rng = np.random.default_rng(2)
    episodes = torch.cat(
        [
            episode_td(
                rng.normal(size=(steps + 1, FEATURE_DIM)).astype(np.float32),
                (-1.0 + 0.3 * rng.normal(size=(steps + 1, OBS_DIM))).astype(np.float32),
                np.tanh(drawn),
                drawn,
                success,
                np.zeros(steps, dtype=np.float32),
            )
            for steps, success in ((40, True), (60, False))
            for drawn in [rng.normal(size=(steps, 7)).astype(np.float32)]
        ]
    )
    assert episodes["next", "terminated"].sum() == 1 and episodes["next", "done"].sum() == 2
    head_before = learner.policy.head.weight.detach().clone()
    stats = [learner.update_on(episodes) for _ in range(10)]
    assert not torch.equal(head_before, learner.policy.head.weight)  # the actor moved
    assert stats[-1]["disc_accuracy_expert"] > 0.9 and stats[-1]["disc_accuracy_policy"] > 0.9
    assert set(learner.optimizers()) == {"disc_optim", "actor_optim", "critic_optim"}
    assert 0 <= stats[-1]["ppo_clip_fraction"] <= 1 and stats[-1]["ppo_kl"] != 0  # it moved
    steps = []
    original = learner._update_discriminator
    learner._update_discriminator = lambda *rows: steps.append(1) or original(*rows)
    learner.config.learner.ppo.disc_epochs = 3
    full = learner.update_on(episodes)
    assert len(steps) == 3 * 4  # 3 passes over 100 steps in minibatches of 32
    assert full["ppo_minibatches_run"] == 1.0
    # a KL target stops the iteration's epochs once the policy moved past 1.5 x it
    learner.config.learner.ppo.target_kl = 1e-6
    stopped = learner.update_on(episodes)
    assert 0 < stopped["ppo_minibatches_run"] < 1.0
    assert stopped["ppo_kl"] <= 1.5e-6  # no step was taken past the target


def test_ppo_takes_its_ratio_at_the_draw_before_the_tanh():
    """A draw far into the tanh's saturation is stored as exactly 1.0 (float32); PPO's
    log-probability is its own Gaussian density before the tanh, not the density of
    atanh(clamped 1.0) = 7.25, so a small move of the mean changes it little."""
    from vismanip.algos.gail.learner import PpoGailLearner
    from vismanip.algos.gail.transitions import episode_td

    torch.manual_seed(0)
    config = GailConfig()
    config.learner.type = "ppo"
    learner = PpoGailLearner(tiny_policy(), OBS_DIM, toy_transitions(50, 1.0, 0.5, 0), config)
    steps, rng = 30, np.random.default_rng(4)
    features = rng.normal(size=(steps + 1, FEATURE_DIM)).astype(np.float32)
    with torch.no_grad():
        learner.policy.head.bias[:] = 20.0  # deep in the saturation on every dimension
        loc, scale = learner.head(torch.as_tensor(features[:-1]))
    drawn = (loc + scale * torch.randn(loc.shape)).numpy()
    stored = np.tanh(drawn).astype(np.float32)
    assert (stored == 1.0).all()
    batch = episode_td(
        features, np.zeros((steps + 1, OBS_DIM), np.float32), stored, drawn, False,
        np.zeros(steps, np.float32),
    )  # fmt: skip
    learner.prepare(batch)
    own = torch.distributions.Normal(loc, scale).log_prob(torch.as_tensor(drawn)).sum(-1)
    torch.testing.assert_close(batch["action_log_prob"], own)
    with torch.no_grad():
        learner.policy.head.bias[:] = 20.001
    kl = float(learner.ppo_loss(batch)["kl_approx"])
    assert 0 < kl < 1e-3  # ~ 7 x 0.001**2 / (2 x 0.3**2) = 4e-5 nats at the true draws
    # (through atanh of the clamped 1.0, the same move gave ~0.4 nats)


def test_ppo_objective_stays_bounded_when_the_policy_sharpens():
    """With a negative advantage PPO's clipped objective does not bound the new/old ratio:
    a policy whose std shrinks around its own draws multiplies their density per action
    dimension (the PPO row's actor loss hit 3e6, then NaN). `ppo.max_ratio` caps it."""
    from vismanip.algos.gail.learner import PpoGailLearner
    from vismanip.algos.gail.transitions import episode_td

    torch.manual_seed(0)
    config = GailConfig()
    config.learner.type = "ppo"
    expert = toy_transitions(200, centre=1.0, action=0.5, seed=0)
    rng = np.random.default_rng(3)
    steps = 60
    batch = episode_td(
        rng.normal(size=(steps + 1, FEATURE_DIM)).astype(np.float32),
        (-1.0 + 0.3 * rng.normal(size=(steps + 1, OBS_DIM))).astype(np.float32),
        np.zeros((steps, 7), dtype=np.float32),
        np.zeros((steps, 7), dtype=np.float32),
        False,
        np.zeros(steps, dtype=np.float32),
    )

    def objective(max_ratio: float) -> float:
        config.learner.ppo.max_ratio = max_ratio
        learner = PpoGailLearner(tiny_policy(), OBS_DIM, expert, config)
        rows = batch.clone()
        with torch.no_grad():  # the draws sit at the policy's own mean
            rows["pre_tanh_action"] = learner.head(rows["features"])[0]
            rows["action"] = torch.tanh(rows["pre_tanh_action"])
        learner.prepare(rows)
        with torch.no_grad():
            learner.head.log_std.sub_(2.0)  # std / 7.4 on each of 7 dimensions
        return float(learner.ppo_loss(rows)["loss_objective"].detach())

    assert objective(1e30) > 1e3  # uncapped: the ratio is about 7.4**7
    assert objective(10.0) <= 10.0  # at most 10 x the mean |advantage| (normalized: <= 1)
    config.learner.ppo.max_ratio = 0.0
    with pytest.raises(VismanipError, match="learner.ppo.max_ratio must be positive"):
        config.check()


def test_a_dead_discriminator_stops_the_run_in_one_line():
    learner = toy_learner(pairs="state")
    learner.update()  # a live D
    with torch.no_grad():  # the output layer's bias far past float32's sigmoid range
        learner.discriminator.net[-1].bias.fill_(1000.0)
    with pytest.raises(VismanipError, match="D's output is exactly 1 on every row"):
        for _ in range(learner.config.disc.updates_every):
            learner.update()


def test_a_discriminator_on_logits_recovers_where_the_sigmoid_one_dies():
    learner = toy_learner(pairs="state", logits=True)
    for _ in range(20):
        learner.update()
    assert learner.update()["disc_accuracy_expert"] > 0.9  # it learns as the sigmoid one does
    with torch.no_grad():
        learner.discriminator.net[-1].bias.fill_(1000.0)  # every row "expert"
    for _ in range(learner.config.disc.updates_every):
        learner.update()  # no stop: BCE with logits still has a gradient here
    assert float(learner.discriminator.net[-1].bias.detach()) < 1000.0


def test_a_non_finite_update_stops_in_one_line_before_the_weights_take_it():
    learner = toy_learner(pairs="state")
    learner.update()
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    learner.expert["action"][:] = float("nan")  # the BC term's and the critic's demo rows
    with pytest.raises(VismanipError, match="not finite; stopped before the weights took it"):
        learner.update()
    after = learner.state_dict()
    kept = [k for k in before if "discriminator" not in k]  # (D's step was finite)
    assert kept and all(torch.equal(before[k], after[k]) for k in kept)


class _FakeEnv:
    """Just enough of VisionEnv for one GAIL episode: 32x32 frames and fixed proprio."""

    class spec:  # noqa: N801  (mirrors VisionEnv.spec)
        object_key = "cube"

    randomization_events: list = []
    target_object: str | None = None  # (plain Lift: no object scene)

    def __init__(self, steps: int) -> None:
        self.steps, self.left = steps, steps
        self.perturbation_strength = 1.0  # noise adds 0.05 to every action, a "push" 0.1

    def _obs(self) -> dict:
        return {
            "agentview_image": np.zeros((32, 32, 3), np.uint8),
            "robot0_eef_pos": np.zeros(3),
            "robot0_eef_quat": np.array([1.0, 0, 0, 0]),
            "robot0_gripper_qpos": np.zeros(2),
            "cube_pos": np.ones(3),
            "cube_quat": np.array([0, 0, 0, 1.0]),
        }

    def reset(self, seed):
        self.left = self.steps
        return self._obs()

    def step(self, action):
        self.left -= 1
        noisy = np.clip(np.asarray(action) + self.perturbation_strength * 0.05, -1, 1)
        executed = np.clip(np.asarray(action) + self.perturbation_strength * 0.1, -1, 1)
        info = {"success": False, "executed": executed, "noisy": noisy}
        return self._obs(), 0.0, self.left == 0, info

    def is_unrecoverable(self, obs) -> bool:
        return False


@pytest.mark.parametrize("after_tanh", [False, True])
def test_exploration_moves_a_saturated_action_only_after_the_tanh(after_tanh):
    from types import SimpleNamespace

    from vismanip.algos.gail.rollouts import GailEpisode

    policy = tiny_policy().eval()
    with torch.no_grad():  # a BC head saturated at +1 on every dimension (pre-tanh mean 4)
        policy.head.weight.zero_()
        policy.head.bias.fill_(4.0)
    env = _FakeEnv(steps=200)
    worker = SimpleNamespace(policy=policy, env=lambda scene: env)
    std = np.full(7, 0.3)
    result = GailEpisode(0, None, std, noise_seed=1, after_tanh=after_tanh)(worker)
    spread = result.actions.std(axis=0).mean()
    if after_tanh:
        assert spread > 0.1  # clipped at +1 from above, free below
    else:
        assert spread < 0.01  # tanh(4 +- 0.3) stays within 0.998-0.9997


def state_d_after_one_update(config: GailConfig) -> tuple[GailLearner, TensorDict]:
    """A learner whose D (on random privileged states) took one step, and its episode."""
    torch.manual_seed(0)
    config.learner.batch_size = 32
    rng = np.random.default_rng(0)
    episode = transitions_td(
        rng.normal(size=(101, FEATURE_DIM)).astype(np.float32),
        rng.normal(size=(101, STATE_DIM)).astype(np.float32),
        np.zeros((100, 7), np.float32),
        np.zeros(100, bool),
        np.zeros(100, np.float32),
    )
    learner = GailLearner(tiny_policy(), STATE_DIM, episode, config)
    learner.add(episode.clone())
    learner.update()
    return learner, episode


def test_relative_d_ignores_where_the_gripper_is():
    config = GailConfig()
    config.disc.pairs, config.disc.relative = "state", True
    learner, episode = state_d_after_one_update(config)
    moved = episode.clone()
    moved["observation"][:, :5] += 10.0  # the gripper and object somewhere else: same reward
    torch.testing.assert_close(learner.reward(moved), learner.reward(episode))
    moved["observation"][:, 6] += 1.0  # the object relative to the gripper: another reward
    assert not torch.allclose(learner.reward(moved), learner.reward(episode))


def test_d_without_the_object_orientation_ignores_how_the_object_lies():
    config = GailConfig()
    config.disc.pairs, config.disc.relative = "state_next", True
    config.disc.object_orientation = False
    learner, episode = state_d_after_one_update(config)
    rolled = episode.clone()
    for key in ("observation", ("next", "observation")):
        rolled[key][:, list(OBJECT_AXES_COLUMNS)] = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    torch.testing.assert_close(learner.reward(rolled), learner.reward(episode))
    tilted = episode.clone()
    tilted["observation"][:, 11] += 1.0  # the gripper's orientation still counts
    assert not torch.allclose(learner.reward(tilted), learner.reward(episode))
    config.disc.input, config.disc.relative = "features", False
    with pytest.raises(VismanipError, match="disc.object_orientation=false needs disc.input"):
        config.check()


def test_the_actors_sac_term_is_scaled_on_the_policys_own_rows():
    from vismanip.algos.gail.learner import actor_term

    # two policy rows (Q ~ -2) and two demo rows near the goal (Q ~ -500)
    loss = torch.tensor([2.0, 2.0, 500.0, 500.0], requires_grad=True)
    term = actor_term(loss, own=2)
    term.backward()
    assert float(term) == pytest.approx(1.0)  # magnitude ~1 on the policy's states
    assert loss.grad.tolist() == pytest.approx([0.25, 0.25, 0.0, 0.0])  # no demo row steers it


@pytest.mark.sim
def test_exploring_episodes_scale_the_perturbation_and_evaluations_keep_the_tasks_own():
    """`explore_perturbation`: strength 0 is the clean task, and the worker's env is back
    at the task's own strength after the episode (evaluations share it)."""
    from types import SimpleNamespace

    from vismanip.algos.gail.rollouts import GailEpisode, Transitions
    from vismanip.envs.vision_env import VisionEnv

    policy = tiny_policy().eval()

    def run(task: str, strength: float, record: str = "commanded") -> Transitions:
        env = VisionEnv(EnvConfig(task=task, cameras=["agentview"], image_size=32, horizon=30))
        worker = SimpleNamespace(policy=policy, env=lambda scene: env)
        try:
            episode = GailEpisode(
                5,
                None,
                np.zeros(7),
                noise_seed=1,
                perturbation_strength=strength,
                record=record,
            )
            transitions = episode(worker)
            assert env.perturbation_strength == 1.0
        finally:
            env.close()
        return transitions

    clean = run("lift", 1.0).states
    np.testing.assert_allclose(run("lift_perturbed", 0.0).states, clean, atol=1e-6)
    perturbed = run("lift_perturbed", 1.0)
    assert not np.allclose(perturbed.states, clean, atol=1e-3)
    # The recorded action is what ran: the task's noise on the motion dims, not the gripper.
    executed = run("lift_perturbed", 1.0, record="executed")
    np.testing.assert_allclose(executed.states, perturbed.states, atol=1e-6)
    moved = np.abs(executed.actions - perturbed.actions).mean(axis=0)
    assert np.all(moved[:6] > 0.02) and moved[6] == 0
    # "noisy": the same noise, but a push's steps keep the policy's own command plus noise.
    noisy = run("lift_perturbed", 1.0, record="noisy")
    np.testing.assert_allclose(noisy.states, perturbed.states, atol=1e-6)
    noise = noisy.actions - perturbed.actions
    assert np.all(np.abs(noise[:, :6]).mean(axis=0) > 0.02) and np.all(noise[:, 6] == 0)
    pushed = np.any(np.abs(executed.actions - noisy.actions) > 1e-6, axis=1)
    assert 0 < pushed.sum() < len(pushed)  # horizon 30 at push_prob 0.04: some pushes


def test_recorded_action_is_the_executed_or_the_commanded_one():
    from types import SimpleNamespace

    from vismanip.algos.gail.rollouts import GailEpisode

    policy = tiny_policy().eval()
    env = _FakeEnv(steps=20)  # executes every action + 0.1
    worker = SimpleNamespace(policy=policy, env=lambda scene: env)
    commanded = GailEpisode(0, None, np.zeros(7), noise_seed=1)(worker).actions
    executed = GailEpisode(0, None, np.zeros(7), noise_seed=1, record="executed")(worker)
    np.testing.assert_allclose(executed.actions, np.clip(commanded + 0.1, -1, 1), atol=1e-6)
    noisy = GailEpisode(0, None, np.zeros(7), noise_seed=1, record="noisy")(worker)
    np.testing.assert_allclose(noisy.actions, np.clip(commanded + 0.05, -1, 1), atol=1e-6)


def test_gripper_flips_reverse_the_policys_gripper_command_for_a_while():
    from types import SimpleNamespace

    from vismanip.algos.gail.rollouts import GailEpisode

    policy = tiny_policy().eval()
    with torch.no_grad():  # a policy that always closes the gripper, as after a missed grasp
        policy.head.weight.zero_()
        policy.head.bias.fill_(4.0)
    env = _FakeEnv(steps=200)
    worker = SimpleNamespace(policy=policy, env=lambda scene: env)
    plain = GailEpisode(0, None, np.zeros(7), noise_seed=1)(worker).actions
    assert np.all(plain[:, 6] > 0.99)
    flips = GailEpisode(
        0, None, np.zeros(7), noise_seed=1, gripper_flip_prob=0.05, gripper_flip_steps=10
    )(worker).actions
    opened = flips[:, 6] == -1.0
    assert 10 <= opened.sum() < 150  # some reversals, each 10 steps long
    np.testing.assert_allclose(flips[~opened], plain[~opened])  # nothing else changes
    starts = np.flatnonzero(np.diff(opened.astype(int)) == 1) + 1
    assert all(opened[start : start + 10].all() for start in starts if start + 10 <= len(opened))


def test_held_exploration_noise_changes_every_hold_steps():
    from types import SimpleNamespace

    from vismanip.algos.gail.rollouts import GailEpisode

    policy = tiny_policy().eval()
    with torch.no_grad():  # a constant policy: every change in the action is the noise
        policy.head.weight.zero_()
        policy.head.bias.zero_()
    env = _FakeEnv(steps=40)
    worker = SimpleNamespace(policy=policy, env=lambda scene: env)
    std = np.full(7, 0.1)
    per_step = GailEpisode(0, None, std, noise_seed=1, after_tanh=True)(worker).actions
    held = GailEpisode(0, None, std, noise_seed=1, after_tanh=True, noise_hold_steps=10)(
        worker
    ).actions
    assert np.all(np.abs(np.diff(per_step, axis=0)) > 0)  # a new draw every step
    changes = np.flatnonzero(np.any(np.diff(held, axis=0) != 0, axis=1)) + 1
    np.testing.assert_array_equal(changes, [10, 20, 30])  # one draw per 10 steps
    np.testing.assert_allclose(held[0], per_step[0])  # the same stream, drawn less often
    config = GailConfig()
    config.learner.noise_hold_steps = 0
    with pytest.raises(VismanipError, match="learner.noise_hold_steps must be at least 1"):
        config.check()


def test_the_rl_term_steers_the_dimensions_the_replay_varies():
    config = GailConfig()
    config.learner.noise_dims = [0, 1, 2, 6]
    assert config.steered_dims(perturbed=True) == [0, 1, 2, 6]  # default: commanded
    config.record_action = "executed"
    assert config.steered_dims(perturbed=False) == [0, 1, 2, 6]
    assert config.steered_dims(perturbed=True) == list(range(7))  # + the task's noise dims
    config.explore_perturbation = [0.0, 0.0]  # exploring episodes run clean
    assert config.steered_dims(perturbed=True) == [0, 1, 2, 6]
    config.explore_perturbation = [0.0, 0.5]
    config.record_action = "noisy"
    assert config.steered_dims(perturbed=True) == list(range(7))
    config.record_action = "commanded"
    assert config.steered_dims(perturbed=True) == [0, 1, 2, 6]
    config.learner.noise_dims = [0, 1, 2]
    config.learner.gripper_flip_prob = 0.02  # exploration reverses the gripper
    assert config.steered_dims(perturbed=True) == [0, 1, 2, 6]
    config.learner.gripper_flip_prob = 1.5
    with pytest.raises(VismanipError, match="learner.gripper_flip_prob must be in"):
        config.check()
    config.learner.gripper_flip_prob = 0.0
    config.record_action = "policy"
    with pytest.raises(VismanipError, match="record_action must be one of commanded, noisy"):
        config.check()


@pytest.mark.parametrize("action_noise", [0.0, 0.2])
def test_exploration_noise_only_on_noise_dims(action_noise):
    from vismanip.algos.gail.run import exploration_std

    config = GailConfig()
    config.learner.action_noise = action_noise
    config.learner.noise_dims = [0, 1, 2, 6]  # rotation commands left alone
    std = exploration_std(config.learner, np.full(7, np.log(0.3)), env_steps=0)
    np.testing.assert_allclose(std[[3, 4, 5]], 0.0)
    np.testing.assert_allclose(std[[0, 1, 2, 6]], action_noise or 0.3)
    config.learner.noise_dims = [0, 1, 2, 3, 4, 6]  # roll and pitch explored, at a tenth
    config.learner.rotation_noise_scale = 0.1
    std = exploration_std(config.learner, np.full(7, np.log(0.3)), env_steps=0)
    if action_noise:
        np.testing.assert_allclose(std, np.array([1, 1, 1, 0.1, 0.1, 0, 1]) * action_noise)
    else:  # SAC's own learned std is not scaled, and the scale alone is refused
        np.testing.assert_allclose(std, np.array([1, 1, 1, 1, 1, 0, 1]) * 0.3)
        with pytest.raises(VismanipError, match="rotation_noise_scale scales learner.action"):
            config.check()
    config.learner.noise_dims = [7]
    with pytest.raises(VismanipError, match="learner.noise_dims must name action dimensions"):
        config.check()
    config.learner.noise_dims, config.learner.rotation_noise_scale = [0], 0.0
    with pytest.raises(VismanipError, match="learner.rotation_noise_scale must be in"):
        config.check()


def test_the_noise_schedule_steps_the_exploration_std_at_its_env_steps():
    """Run V's recipe as one setting: 0.5 until 40k env steps, then 0.25."""
    from vismanip.algos.gail.run import exploration_std

    config = GailConfig()
    config.learner.action_noise = 0.5
    config.learner.action_noise_schedule = [[40000, 0.25], [80000, 0.1]]
    config.check()
    learned = np.full(7, np.log(0.3))
    stds = [exploration_std(config.learner, learned, n)[0] for n in (0, 39999, 40000, 90000)]
    np.testing.assert_allclose(stds, [0.5, 0.5, 0.25, 0.1])
    for bad in ([[40000, 0.25], [20000, 0.1]], [[40000, 1.5]], [[40000]]):
        config.learner.action_noise_schedule = bad
        with pytest.raises(VismanipError, match="learner.action_noise_schedule must be"):
            config.check()
    config.learner.action_noise_schedule = [[40000, 0.25]]
    config.learner.action_noise = 0.0
    with pytest.raises(VismanipError, match="needs learner.action_noise > 0"):
        config.check()


def test_rl_weight_zero_trains_the_actor_on_the_bc_term_alone():
    """The control run: with rl_weight=0 the actor's update is exactly BC's; with both
    weights 0 the policy does not move however the critic and D learn."""
    torch.manual_seed(0)
    learner = toy_learner()
    learner.config.learner.rl_weight = 0.0
    learner.config.learner.bc_weight = 0.0
    before = {k: v.clone() for k, v in learner.policy.state_dict().items()}
    for _ in range(3):
        learner.update(train_actor=True)
    for key, value in learner.policy.state_dict().items():
        torch.testing.assert_close(value, before[key], msg=key)
    learner.config.learner.bc_weight = 1.0
    learner.update(train_actor=True)
    assert any(
        not torch.equal(value, before[key]) for key, value in learner.policy.state_dict().items()
    )


def test_q_filter_keeps_bc_only_where_the_critic_prefers_the_demo_action(monkeypatch):
    """ROT's Q-filter: the BC term counts on the demo states where Q(s, a_demo) beats
    Q(s, policy(s)); the toy demos' action is 0.5 everywhere, the untrained policy's ~0."""
    torch.manual_seed(0)
    learner = toy_learner()
    expert = learner.expert[:64]
    unfiltered, _ = learner._bc_loss(expert)
    learner.config.learner.bc_q_filter = True
    best = {"demo": 0.5, "elsewhere": -0.5}
    for where, target in best.items():
        q = lambda observation, action, t=target: -((action - t) ** 2).sum(-1)  # noqa: E731
        monkeypatch.setattr(learner, "min_target_q", q)
        loss, stats = learner._bc_loss(expert)
        if where == "demo":
            assert stats["bc_q_filter_kept"] == 1.0
            torch.testing.assert_close(loss, unfiltered)
        else:
            assert stats["bc_q_filter_kept"] == 0.0 and float(loss) == 0.0
    monkeypatch.undo()
    assert "bc_q_filter_kept" in learner.update()  # the real critics, end to end
    learner.config.learner.type = "ppo"
    with pytest.raises(VismanipError, match="bc_q_filter needs a critic of actions"):
        learner.config.check()


def test_ppo_refuses_exploration_that_is_not_the_policys_own_draws():
    config = GailConfig()
    config.learner.type = "ppo"
    config.check()  # the defaults explore with the policy's own std
    for key, value in [("action_noise", 0.25), ("noise_hold_steps", 10)]:
        changed = GailConfig()
        changed.learner.type = "ppo"
        setattr(changed.learner, key, value)
        with pytest.raises(VismanipError, match=f"policy's own action draws.*not: learner.{key}"):
            changed.check()
    config.record_action = "noisy"
    with pytest.raises(VismanipError, match="not: record_action"):
        config.check()


def test_rl_gradient_reaches_only_the_explored_dimensions():
    from vismanip.algos.gail.learner import GaussianHead

    policy = tiny_policy()
    head = GaussianHead(policy, 0.3, steered=[0, 1, 2, 6])
    features = torch.randn(4, FEATURE_DIM)
    loc, _ = head(features)
    loc.sum().backward()
    grad = policy.head.weight.grad
    assert torch.all(grad[[3, 4, 5]] == 0) and torch.all(grad[[0, 1, 2, 6]].abs().sum(1) > 0)
    torch.testing.assert_close(loc, policy.action_mean(features))  # the same actions


def test_without_entropy_the_temperature_stays_at_zero():
    """`learner.entropy=false`: alpha is fixed at ~0 however the updates go, so the actor's
    loss is the critic's value alone; the saved state has the same keys (resume works)."""
    torch.manual_seed(0)
    with_entropy = toy_learner()
    config = GailConfig()
    config.learner.batch_size, config.learner.entropy = 64, False
    learner = GailLearner(tiny_policy(), OBS_DIM, with_entropy.expert, config)
    learner.add(toy_transitions(200, centre=-1.0, action=-0.5, seed=1))
    stats = [learner.update() for _ in range(5)]
    assert all(s["alpha"] < 1e-7 for s in stats)
    assert [with_entropy.update() for _ in range(5)][-1]["alpha"] != 0.1  # tuned when on
    assert learner.state_dict().keys() == with_entropy.state_dict().keys()


def toy_iql_config() -> GailConfig:
    """IQL on the sparse success reward, no BC term, small and fast networks."""
    config = GailConfig()
    config.learner.type, config.reward_source = "iql", "success"
    config.learner.batch_size, config.learner.bc_weight = 32, 0.0
    config.learner.actor_lr = config.learner.critic_lr = 3e-3
    config.learner.critic_hidden = config.learner.iql.value_hidden = [32]
    return config


def paying_replay(steps: int = 200) -> tuple[TensorDict, torch.Tensor]:
    """Random states where an executed +0.5 on action dimension 0 earns the success
    reward and -0.5 does not; and the steps' encodings."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(steps + 1, FEATURE_DIM)).astype(np.float32)
    states = rng.normal(size=(steps + 1, OBS_DIM)).astype(np.float32)
    actions = np.zeros((steps, 7), np.float32)
    actions[:, 0] = np.where(np.arange(steps) % 2 == 0, 0.5, -0.5)
    rewards = (actions[:, 0] > 0).astype(np.float32)
    replay = transitions_td(features, states, actions, np.zeros(steps, bool), rewards)
    return replay, torch.as_tensor(features[:-1])


def test_iql_actor_moves_towards_the_executed_actions_that_paid():
    """`learner.type=iql`: in the same states, executed actions of +0.5 on dimension 0 earn
    the (success) reward and -0.5 do not; advantage-weighted regression moves the policy's
    action there, with no BC term and no Q evaluated at actions it proposes."""
    from vismanip.algos.gail.learner import IqlGailLearner

    torch.manual_seed(0)
    config = toy_iql_config()
    replay, encodings = paying_replay()
    learner = IqlGailLearner(tiny_policy(), OBS_DIM, replay.clone(), config)
    learner.add(replay)

    def mean_action() -> float:
        with torch.no_grad():
            return float(torch.tanh(learner.policy.action_mean(encodings))[:, 0].mean())

    before = mean_action()
    for _ in range(250):
        stats = learner.update()
    assert mean_action() > before + 0.1
    assert mean_action() > 0.1
    # half the actions paid: the weights follow about half of the batch, not all of it
    assert 0.0 < stats["advantage_weight_ess"] < 0.9
    # a resumed run rebuilds the same state
    assert (
        learner.state_dict().keys()
        == IqlGailLearner(tiny_policy(), OBS_DIM, replay.clone(), config).state_dict().keys()
    )


def test_normalized_advantage_weights_do_not_depend_on_the_rewards_scale():
    """`iql.normalize_advantage`: advantages ten times larger (ten times the rewards) give
    the same weights, where the plain weights sharpen onto fewer transitions; and the
    learner trains with it on."""
    from vismanip.algos.gail.learner import IqlGailLearner, iql_weights

    advantage = torch.randn(256, generator=torch.Generator().manual_seed(0))
    normalized = iql_weights(advantage, 3.0, normalize=True)
    torch.testing.assert_close(iql_weights(10 * advantage, 3.0, normalize=True), normalized)
    small = 0.3 * advantage  # below the clip at 100 even when tripled
    plain = effective_sample_share(iql_weights(small, 1.0, normalize=False))
    assert effective_sample_share(iql_weights(3 * small, 1.0, normalize=False)) < plain - 0.2

    torch.manual_seed(0)
    config = toy_iql_config()
    config.learner.iql.normalize_advantage = True
    replay, _ = paying_replay()
    learner = IqlGailLearner(tiny_policy(), OBS_DIM, replay.clone(), config)
    learner.add(replay)
    for _ in range(20):
        stats = learner.update()
    assert 0.0 < stats["advantage_weight_ess"] <= 1.0


def test_end_to_end_steps_train_the_encoder_towards_the_actions_that_paid():
    """`learner.end_to_end`: the critic's updates leave the policy alone, and the full-network
    steps move every layer, camera encoder included, towards the replay's actions that
    earned the reward (+0.5 on dimension 0; -0.5 earned nothing), reading the images."""
    from vismanip.algos.gail.learner import IqlGailLearner

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    config = GailConfig()
    config.learner.type, config.reward_source = "iql", "success"
    config.disc.input = "state"
    config.learner.batch_size, config.learner.bc_weight = 32, 0.0
    config.learner.critic_lr = 3e-3
    config.learner.critic_hidden = config.learner.iql.value_hidden = [32]
    config.learner.end_to_end.steps, config.learner.end_to_end.lr = 1, 3e-3
    config.learner.end_to_end.batch_size = 32
    config.check()
    steps = 200
    pairs = np.arange(steps + 1) // 2  # each state twice: once with each action
    policy_obs = {
        "agentview_image": rng.integers(0, 255, (steps + 1, 32, 32, 3), dtype=np.uint8)[pairs],
        "robot0_eef_pos": rng.normal(size=(steps + 1, 3)).astype(np.float32)[pairs],
    }
    actions = np.zeros((steps, 7), np.float32)
    actions[:, 0] = np.where(np.arange(steps) % 2 == 0, 0.5, -0.5)
    replay = transitions_td(
        rng.normal(size=(steps + 1, FEATURE_DIM)).astype(np.float32),
        rng.normal(size=(steps + 1, OBS_DIM)).astype(np.float32)[pairs],
        actions,
        np.zeros(steps, bool),
        (actions[:, 0] > 0).astype(np.float32),
        policy_obs=policy_obs,
    )
    assert replay["policy_obs", "agentview_image"].dtype == torch.uint8
    policy = tiny_policy()
    learner = IqlGailLearner(policy, OBS_DIM, replay.clone(), config)
    learner.add(replay)
    inputs = {key: torch.as_tensor(value[:-1]) for key, value in policy_obs.items()}

    def mean_action() -> float:
        with torch.no_grad():
            return float(policy.predict(inputs)[:, 0].mean())

    before = {name: value.clone() for name, value in policy.state_dict().items()}
    for _ in range(150):
        learner.update()  # the critic and V only
    assert all(torch.equal(before[name], value) for name, value in policy.state_dict().items())
    start = mean_action()
    encoder = policy.encoders[0].trunk[0].weight.detach().clone()
    for _ in range(100):
        learner.update()
        stats = learner.update_end_to_end()
    assert not torch.equal(encoder, policy.encoders[0].trunk[0].weight)
    assert mean_action() > start + 0.1
    assert 0.0 < stats["advantage_weight_ess"] < 0.9 and stats["bc_loss"] >= 0.0


def test_end_to_end_needs_iql_on_the_state():
    for key, value in [("learner.type", "sac"), ("disc.input", "features")]:
        config = GailConfig()
        config.learner.type, config.learner.end_to_end.steps = "iql", 4
        section, name = key.split(".")
        setattr(getattr(config, section), name, value)
        with pytest.raises(VismanipError, match="end_to_end.steps > 0 needs learner.type=iql"):
            config.check()
    config = GailConfig()
    config.learner.end_to_end.batch_size = 1
    with pytest.raises(VismanipError, match="learner.end_to_end needs"):
        config.check()


def test_the_anchor_holds_the_actor_near_its_start_on_the_replays_states():
    """`learner.anchor_weight`: the same advantage-weighted pull as above moves the policy
    far less with the anchor on; the anchor's term is 0 at the start and is saved with
    the learner (a resumed run keeps its own start); PPO and end-to-end refuse it."""
    from vismanip.algos.gail.learner import IqlGailLearner

    replay, encodings = paying_replay()

    def moved(anchor_weight: float) -> tuple[float, list[dict], IqlGailLearner]:
        torch.manual_seed(0)
        config = toy_iql_config()
        config.learner.anchor_weight = anchor_weight
        learner = IqlGailLearner(tiny_policy(), OBS_DIM, replay.clone(), config)
        learner.add(replay)
        with torch.no_grad():
            start = torch.tanh(learner.policy.action_mean(encodings))
        history = [learner.update() for _ in range(250)]
        with torch.no_grad():
            end = torch.tanh(learner.policy.action_mean(encodings))
        return float((end - start).abs().mean()), history, learner

    free, _, _ = moved(0.0)
    held, history, learner = moved(30.0)
    assert held < 0.5 * free
    assert history[0]["anchor_loss"] == 0.0 < history[-1]["anchor_loss"]
    assert any(key.startswith("anchor.") for key in learner.state_dict())
    for key, value in [("learner.type", "ppo"), ("learner.end_to_end.steps", 4)]:
        config = GailConfig()
        config.learner.type, config.learner.anchor_weight = "iql", 1.0
        set_dotted(config, key, value)
        with pytest.raises(VismanipError, match="learner.anchor_weight needs"):
            config.check()


def set_dotted(config: GailConfig, dotted: str, value: object) -> None:
    """Set a nested config field by its dotted name."""
    *sections, name = dotted.split(".")
    target: object = config
    for section in sections:
        target = getattr(target, section)
    setattr(target, name, value)


def test_exploring_episodes_name_their_target_and_gail_md_counts_them_by_object():
    """Experiment 2's question "does exploring ever lift a ball?": each exploring episode
    carries its scene's target object, and gail.md tabulates successes per object."""
    from types import SimpleNamespace

    from vismanip.algos.gail.rollouts import GailEpisode
    from vismanip.evaluation.report import exploring_table

    env = _FakeEnv(steps=5)
    env.target_object = "lemon"
    worker = SimpleNamespace(policy=tiny_policy().eval(), env=lambda scene: env)
    assert GailEpisode(0, None, np.zeros(7), noise_seed=1)(worker).target == "lemon"
    table = exploring_table({"lemon": [1, 4], "ball": [0, 3]})
    assert "| ball | 0/3 (0%) |" in table and "| lemon | 1/4 (25%) |" in table
    assert table.index("ball") < table.index("lemon")
    assert exploring_table({}) == ""
