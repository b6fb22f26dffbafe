"""GAIL (Ho & Ermon, 2016) the way it works from pixels: off-policy and DAC-style
(Kostrikov et al., 2019), started from a BC policy and kept near it by a BC term (ROT,
Haldar et al., 2022). No expert is asked anything: the discriminator's output is the reward.

One iteration: the runner's persistent workers roll out `episodes_per_iteration` exploring
episodes with the current weights; their transitions go to the replay buffer (and to a
shard on disk); the learner makes `updates_per_step` updates per new env step. Every
`eval_every` env steps the deterministic policy is evaluated with the shared evaluator.

Everything a resumed run needs is in `output_dir`:

    config.yaml, run.json     resolved config, seed, git revision
    learner.pt                every network, optimizer and counter after the last iteration
    replay/iter_NNNNNN.pt     each iteration's transitions (the replay buffer, rebuilt)
    best.ckpt, last.ckpt      the policy (same format as BC's: eval and export take it)
    gail.json, gail.md, gail.png, logs/ (CSV + TensorBoard)

A killed run continues with `vismanip gail --resume DIR` and loses at most one iteration.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
import yaml
from lightning.pytorch.loggers import TensorBoardLogger
from tensordict import TensorDict
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from vismanip.algos.gail.configuration import GailConfig, LearnerConfig
from vismanip.algos.gail.expert import check_demos, expert_transitions
from vismanip.algos.gail.rollouts import STATE_DIM, GailEpisode, Transitions
from vismanip.algos.gail.transitions import episode_td, transitions_td
from vismanip.algos.lightning_helpers import write_metrics
from vismanip.config import config_from_dict, run_metadata
from vismanip.envs.actions import ACTION_DIM, ROTATION_DIMS
from vismanip.envs.rendering import ensure_gl_backend
from vismanip.envs.tasks import task_spec
from vismanip.errors import VismanipError
from vismanip.evaluation.evaluate import run_evaluation
from vismanip.evaluation.html_report import write_html_report
from vismanip.evaluation.report import exploring_table, gail_table, plot_gail
from vismanip.files import write_text_atomic
from vismanip.policies import ImagePolicy
from vismanip.policies.checkpoint import PolicyWeights, load_policy, save_atomic, save_policy
from vismanip.progress import progress_bar
from vismanip.rollout.episode import GAIL_STREAM, episode_seed
from vismanip.rollout.runner import EpisodeRunner, Scene
from vismanip.sim2real.augmentation import AugmentationConfig, KorniaAugment

if TYPE_CHECKING:
    from vismanip.algos.gail.learner import AdversarialLearner as Learner


class GailRun:
    """One GAIL run in `config.output_dir`; `run()` trains until the env-step budget."""

    def __init__(self, config: GailConfig) -> None:
        self.config = config
        self.dir = Path(config.output_dir)
        config.check()
        if not config.init:
            raise VismanipError("no initial policy: pass init=runs/<bc_run>/best.ckpt")
        init = load_policy(config.init)
        self.policy = init.weights.build()
        if config.init_lowdim_std_floor > 0:
            self.policy.floor_lowdim_std(
                config.init_lowdim_std_floor, list(config.init_lowdim_std_floor_keys)
            )
        # What evaluations and checkpoints hold with `learner.policy_average`: an EMA of
        # the weights the updates change (torch's AveragedModel; a deep copy of the start).
        decay = config.learner.policy_average
        self.average = (
            AveragedModel(self.policy, multi_avg_fn=get_ema_multi_avg_fn(decay)) if decay else None
        )
        self.init_train = dict(init.train_config or {})
        self.demos = config.demos or self.init_train.get("data", "")
        if not self.demos or not Path(self.demos).is_file():
            raise VismanipError(f"expert demos {self.demos or '(none)'} not found: pass demos=PATH")
        demos_scene = init.env_for(config.task)
        env = demos_scene.with_scene(config.objects, config.clutter)
        config.randomization.check(allow_heldout=False)
        self.env_config = env
        # The checkpoints keep the demos' objects and clutter as the policy's own scene, so
        # `eval --suite generalization` calls the demos' objects seen and the others novel,
        # also after GAIL interacted with them (experiment 2).
        self.checkpoint_env = replace(env, objects=demos_scene.objects, clutter=demos_scene.clutter)
        check_demos(self.demos, self.policy, env.task, config.disc.input)
        if self.policy.config.head != "deterministic":
            raise VismanipError(
                f"{config.init}: GAIL needs a policy with the deterministic head, "
                f"not {self.policy.config.head!r}"
            )
        if self.policy.config.frames != 1:
            raise VismanipError(
                f"{config.init}: GAIL needs a policy that reads one observation, not "
                f"policy.frames={self.policy.config.frames}"
            )
        randomization = config.randomization if config.randomization.enabled() else None
        self.scene = Scene(env, randomization)
        self.guard_scenes = {
            task: Scene(replace(env, task=task), randomization) for task in config.guard_tasks
        }
        for task in config.guard_tasks:
            guard, own = task_spec(task).env_name, task_spec(env.task).env_name
            if guard != own:
                raise VismanipError(
                    f"guard task {task!r} runs robosuite's {guard}, not {own} like the task "
                    f"{env.task!r}: guard_tasks must be variants of the same scene"
                )
        if config.guard_seen:
            if self.checkpoint_env == env:
                raise VismanipError(
                    "guard_seen=true: the interaction scene already is the demos' own "
                    "(objects and clutter); it guards nothing"
                )
            self.guard_scenes["seen"] = Scene(self.checkpoint_env, randomization)
        # What best.ckpt carries: export parity-checks on the demos.
        self.train_config = {**self.init_train, "data": self.demos, "gail": asdict(config)}

    # ------------------------------------------------------------------ driver
    def run(self, resume: bool = False) -> list[dict]:
        config = self.config
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "config.yaml").write_text(yaml.safe_dump(asdict(config), sort_keys=False))
        if not (self.dir / "run.json").exists():
            (self.dir / "run.json").write_text(run_metadata(config, config.seed))
        torch.manual_seed(config.seed)
        torch.set_num_threads(config.learner.threads)
        # torchrl imports mujoco, which binds its GL backend at import: choose it first.
        ensure_gl_backend(self.env_config.render.backend)
        from vismanip.algos.gail.learner import GailLearner, IqlGailLearner, PpoGailLearner

        expert = expert_transitions(
            self.demos,
            self.policy,
            self.env_config.task,
            config.disc.input,
            self.frame_size,
            policy_inputs=self.end_to_end,
            augmented_copies=config.learner.demo_augmented_copies,
            augment=self._image_augmentation() if config.learner.demo_augmented_copies else None,
        )
        observation_dim = STATE_DIM if config.disc.input == "state" else self.feature_dim
        kind = {"sac": GailLearner, "iql": IqlGailLearner, "ppo": PpoGailLearner}[
            config.learner.type
        ]
        perturbed = task_spec(self.env_config.task).perturbation is not None
        learner = kind(
            self.policy,
            observation_dim,
            expert,
            config,
            config.steered_dims(perturbed),
            self._image_augmentation() if self.end_to_end else None,
        )
        progress = self._restore(learner) if resume else _Progress()
        # Lightning's TensorBoard logger, not its Trainer: the loop alternates simulator
        # batches and gradient steps on a replay buffer, which Trainer's epoch/dataloader
        # loop does not model. logs/metrics.csv (the same layout as BC runs) is rewritten
        # from the saved progress after every iteration, so a kill or --resume loses no row
        # (Lightning's CSVLogger writes only at the end and starts afresh when resumed).
        self.tensorboard = TensorBoardLogger(self.dir, name="logs", version="")
        with (
            EpisodeRunner(config.workers, config.runner, self.env_config.render.backend) as runner,
            progress_bar(
                total=config.env_steps, initial=progress.env_steps, unit="step", desc="gail"
            ) as bar,
            ThreadPoolExecutor(max_workers=1) as collector,
        ):
            if not progress.history:
                self._evaluate(runner, progress)
            # SAC learns off-policy: the next batch can be collected (with the weights from
            # before this batch's updates) while the learner trains, so the simulator and
            # the updates share the time instead of taking turns. PPO stays on-policy; one
            # worker runs in this process, whose GL context must stay on one thread.
            overlap = (
                config.overlap_rollouts and config.learner.type != "ppo" and config.workers > 1
            )
            pending: Future[list[Transitions]] | None = None
            while progress.env_steps < config.env_steps:
                started = time.perf_counter()
                if pending is None:
                    batch = self._collect(
                        runner,
                        *self._exploration(learner, progress.iteration, progress.env_steps),
                    )
                else:
                    batch = pending.result()
                    pending = None
                steps = sum(len(t) for t in batch)
                after = progress.env_steps + steps
                if (
                    overlap
                    and after < config.env_steps
                    and not self._evaluation_due(after, progress)
                ):
                    pending = collector.submit(
                        self._collect,
                        runner,
                        *self._exploration(learner, progress.iteration + 1, after),
                    )
                stats = self._train(learner, batch, progress.iteration, after)
                if self.average is not None:
                    self.average.update_parameters(self.policy)
                if config.learner.action_noise > 0:  # the noise this batch explored with
                    stats["exploration_std"] = float(  # (not the rotation's smaller share)
                        exploration_std(config.learner, np.zeros(ACTION_DIM), progress.env_steps)[
                            config.learner.noise_dims
                        ].max()
                    )
                progress.env_steps += steps
                progress.iteration += 1
                stats.update(
                    env_steps=progress.env_steps,
                    rollout_success=float(np.mean([t.success for t in batch])),
                )
                progress.iterations.append(stats)
                for episode in batch:  # which objects the exploring episodes lift
                    if episode.target:
                        counts = progress.exploring_by_object.setdefault(episode.target, [0, 0])
                        counts[0] += int(episode.success)
                        counts[1] += 1
                self._log(stats, progress.env_steps)
                evaluate = self._evaluation_due(progress.env_steps, progress)
                progress.wall_time += time.perf_counter() - started
                if evaluate:  # (its entry records the wall time before it, evaluations included)
                    started = time.perf_counter()
                    self._evaluate(runner, progress)
                    progress.wall_time += time.perf_counter() - started
                self._save(learner, progress)
                bar.update(steps)
                bar.set_postfix(
                    success=f"{progress.history[-1]['success_rate']:.0%}",
                    rollouts=f"{stats['rollout_success']:.0%}",
                    refresh=False,
                )
        self.tensorboard.save()
        return progress.history

    @property
    def evaluated_policy(self) -> ImagePolicy:
        """What evaluations, best.ckpt and last.ckpt hold: the average of the weights with
        `learner.policy_average`, else the latest ones (which explore either way)."""
        return cast(ImagePolicy, self.average.module) if self.average else self.policy

    @property
    def frame_size(self) -> int:
        """The size of D's frames (`disc.input=image`), else 0: no frames are kept."""
        return self.config.disc.image_size if self.config.disc.input == "image" else 0

    @property
    def end_to_end(self) -> bool:
        """Whether the whole policy learns from frames (`learner.end_to_end`): then the
        replay and the expert keep the policy's own inputs."""
        return self.config.learner.end_to_end.steps > 0

    def _image_augmentation(self) -> KorniaAugment:
        """The BC checkpoint's own image augmentation (DrQ's shift by default), for the
        steps that train the encoders on images (kornia, on the batch)."""
        stored = self.init_train.get("augmentation")
        augmentation = (
            config_from_dict(AugmentationConfig, stored) if stored else AugmentationConfig()
        )
        return KorniaAugment(augmentation, self.policy.image_size, len(self.policy.image_keys))

    @property
    def feature_dim(self) -> int:
        policy = self.policy
        return policy.config.feature_dim * len(policy.image_keys) + sum(policy.lowdim_dims.values())

    # ------------------------------------------------------------------ steps
    def _evaluation_due(self, env_steps: int, progress: _Progress) -> bool:
        """At the end, and on crossing each multiple of `eval_every`."""
        every = self.config.eval_every
        return (
            env_steps >= self.config.env_steps or env_steps // every > progress.last_eval // every
        )

    def _exploration(
        self, learner: Learner, iteration: int, env_steps: int
    ) -> tuple[PolicyWeights, list[GailEpisode]]:
        """The current weights and one batch of exploring episodes with the std for
        `env_steps`, copied now (in the main thread: the learner may change them right after)."""
        config = self.config
        after_tanh = config.learner.action_noise > 0
        std = exploration_std(config.learner, learner.head.log_std.detach().numpy(), env_steps)
        low, high = config.explore_perturbation
        strengths = np.random.default_rng(
            episode_seed(config.seed + 2, iteration, GAIL_STREAM)
        ).uniform(low, high, config.episodes_per_iteration)
        tasks = [
            GailEpisode(
                episode_seed(config.seed, iteration * 1000 + i, GAIL_STREAM),
                self.scene,
                std,
                noise_seed=episode_seed(config.seed + 1, iteration * 1000 + i, GAIL_STREAM),
                after_tanh=after_tanh,
                perturbation_strength=float(strength),
                record=config.record_action,
                gripper_flip_prob=config.learner.gripper_flip_prob,
                gripper_flip_steps=config.learner.gripper_flip_steps,
                noise_hold_steps=config.learner.noise_hold_steps,
                frame_size=self.frame_size,
                policy_inputs=self.end_to_end,
            )
            for i, strength in enumerate(strengths)
        ]
        return PolicyWeights.of(self.policy), tasks

    def _collect(
        self, runner: EpisodeRunner, weights: PolicyWeights, tasks: list[GailEpisode]
    ) -> list[Transitions]:
        runner.set_policy(weights)
        return list(runner.run(tasks, ordered=True))

    def _observations(self, episode: Transitions) -> np.ndarray:
        return episode.states if self.config.disc.input == "state" else episode.features

    def _train(
        self, learner: Learner, batch: list[Transitions], iteration: int, env_steps: int
    ) -> dict:
        """SAC: the batch joins the replay buffer (and a shard on disk), then
        `updates_per_step` updates per new step. PPO: epochs over this batch alone."""
        from vismanip.algos.gail.learner import (  # (loaded by run())
            GailLearner,
            IqlGailLearner,
            PpoGailLearner,
        )

        learner_config = self.config.learner
        train_actor = env_steps >= learner_config.actor_start_steps
        learner.train()
        if isinstance(learner, PpoGailLearner):
            episodes = []
            for e in batch:
                assert e.pre_tanh_actions is not None  # (PPO explores before the tanh: check())
                episodes.append(
                    episode_td(
                        e.features,
                        self._observations(e),
                        e.actions,
                        e.pre_tanh_actions,
                        e.success,
                        e.rewards,
                        e.frames,
                    )
                )
            return learner.update_on(cast(TensorDict, torch.cat(episodes)), train_actor)
        assert isinstance(learner, GailLearner)
        shard = cast(
            TensorDict,
            torch.cat(
                [
                    transitions_td(
                        e.features,
                        self._observations(e),
                        e.actions,
                        e.success_step,
                        e.rewards,
                        e.frames,
                        e.policy_obs,
                    )
                    for e in batch
                ]
            ),
        )
        save_atomic(shard.to_dict(), self.dir / "replay" / f"iter_{iteration:06d}.pt")
        learner.add(shard)
        if env_steps < learner_config.warmup_steps:
            return {}
        new_steps = sum(len(e) for e in batch)
        totals: dict[str, list[float]] = {}
        for _ in range(max(1, round(learner_config.updates_per_step * new_steps))):
            for key, value in learner.update(train_actor).items():
                totals.setdefault(key, []).append(value)
        if self.end_to_end and train_actor:
            assert isinstance(learner, IqlGailLearner)  # (GailConfig.check)
            for _ in range(learner_config.end_to_end.steps):
                for key, value in learner.update_end_to_end().items():
                    totals.setdefault(key, []).append(value)
        return {key: float(np.mean(values)) for key, values in totals.items()}

    def _log(self, metrics: dict[str, float], env_steps: int) -> None:
        self.tensorboard.log_metrics(metrics, step=env_steps)

    def _evaluate(self, runner: EpisodeRunner, progress: _Progress) -> None:
        """The deterministic policy (what eval and export use) on the selection stream's
        episodes, in the interaction scene and on each guard task; best.ckpt follows the
        interaction scene's success among the evaluations the guard admits."""
        runner.set_policy(PolicyWeights.of(self.evaluated_policy))
        summary = self._success(runner, self.scene)
        entry = {
            "env_steps": progress.env_steps,
            "iteration": progress.iteration,
            "wall_time_s": round(progress.wall_time, 1),
            "success_rate": summary["success_rate"],
            "success_ci95": summary["success_ci95"],
            "episode_length": summary["episode_length"],
        }
        if self.guard_scenes:
            entry["guard_tasks"] = {}
            for task, scene in self.guard_scenes.items():
                guard = self._success(runner, scene)
                entry["guard_tasks"][task] = {
                    "success_rate": guard["success_rate"],
                    "success_ci95": guard["success_ci95"],
                }
        recent = progress.iterations[-1] if progress.iterations else {}
        for key in ("disc_accuracy_expert", "disc_accuracy_policy", "reward", "exploration_std"):
            if key in recent:
                entry[key] = recent[key]
        progress.history.append(entry)
        progress.last_eval = progress.env_steps
        self._log(
            {
                "eval/success_rate": summary["success_rate"],
                **{
                    f"eval/{task}/success_rate": guard["success_rate"]
                    for task, guard in entry.get("guard_tasks", {}).items()
                },
            },
            progress.env_steps,
        )
        better = summary["success_rate"] > progress.best_success
        if (better and self._guard_admits(entry, progress.history[0])) or not (
            self.dir / "best.ckpt"
        ).exists():
            progress.best_success = summary["success_rate"]
            progress.best_env_steps = progress.env_steps
            save_policy(
                self.dir / "best.ckpt",
                self.evaluated_policy,
                self.checkpoint_env,
                self.train_config,
            )

    def _success(self, runner: EpisodeRunner, scene: Scene) -> dict:
        return run_evaluation(
            runner,
            scene,
            self.config.eval_episodes,
            self.config.seed,
            show_progress=False,
            desc="evaluate",
            for_selection=True,  # best.ckpt is chosen here: not on `vismanip eval`'s episodes
        ).summary

    def _guard_admits(self, entry: dict, start: dict) -> bool:
        """Whether every guard task's success is within `guard_max_drop` of the start's."""
        floor = {
            task: guard["success_rate"] - self.config.guard_max_drop
            for task, guard in start.get("guard_tasks", {}).items()
        }
        return all(
            guard["success_rate"] >= floor[task] - 1e-9  # (rates are k / episodes)
            for task, guard in entry.get("guard_tasks", {}).items()
            if task in floor
        )

    # ------------------------------------------------------------------ records
    def _save(self, learner: Learner, progress: _Progress) -> None:
        """After each iteration: learner state first, then what a person reads."""
        save_atomic(
            {
                "learner": learner.state_dict(),
                "optimizers": {
                    name: optimizer.state_dict() for name, optimizer in learner.optimizers().items()
                },
                "updates": learner.updates,
                "progress": asdict(progress),
                "torch_rng": torch.get_rng_state(),
                "policy_average": self.average.state_dict() if self.average else None,
            },
            self.dir / "learner.pt",
        )
        save_policy(
            self.dir / "last.ckpt", self.evaluated_policy, self.checkpoint_env, self.train_config
        )
        record = {
            "task": self.env_config.task,
            "guard_tasks": list(self.guard_scenes),
            "best_env_steps": progress.best_env_steps,
            "evaluations": progress.history,
            "iterations": progress.iterations,
            "exploring_by_object": progress.exploring_by_object,
        }
        write_text_atomic(self.dir / "gail.json", json.dumps(record, indent=2))
        write_metrics(self.dir / "logs" / "metrics.csv", _metric_rows(progress))
        (self.dir / "gail.md").write_text(
            gail_table(progress.history, progress.best_env_steps)
            + exploring_table(progress.exploring_by_object)
        )
        plot_gail(progress.history, progress.iterations, self.dir / "gail.png")
        write_html_report(self.dir, f"GAIL on {self.env_config.task}: {self.dir}")

    def _restore(self, learner: Learner) -> _Progress:
        from vismanip.algos.gail.learner import GailLearner  # (loaded by run())

        path = self.dir / "learner.pt"
        if not path.exists():
            raise VismanipError(f"{self.dir}: no learner.pt to resume from")
        saved = torch.load(path, map_location="cpu", weights_only=True)
        try:
            learner.load_state_dict(saved["learner"])
        except RuntimeError as error:  # torch lists every mismatched tensor: name the first
            first = str(error).split("\n\t")[1] if "\n\t" in str(error) else str(error)
            raise VismanipError(
                f"{path}: its networks do not fit this config or this version of vismanip "
                f"({first.strip()[:160]}); start a new run"
            ) from None
        for name, optimizer in learner.optimizers().items():
            optimizer.load_state_dict(saved["optimizers"][name])
        learner.updates = saved["updates"]
        torch.set_rng_state(saved["torch_rng"])
        if self.average is not None and saved.get("policy_average"):
            self.average.load_state_dict(saved["policy_average"])
        progress = _Progress(**saved["progress"])
        # Shards of iterations the saved learner has seen; a later one is from the
        # iteration a kill interrupted, which runs again.
        for shard in sorted((self.dir / "replay").glob("iter_*.pt")):  # (SAC only)
            if int(shard.stem.split("_")[1]) >= progress.iteration:
                shard.unlink()
            elif isinstance(learner, GailLearner):  # SAC's buffer; PPO keeps none
                data = torch.load(shard, map_location="cpu", weights_only=True)
                learner.add(TensorDict(data, batch_size=[len(data["action"])]))
        return progress


def exploration_std(config: LearnerConfig, log_std: np.ndarray, env_steps: int) -> np.ndarray:
    """Per action dimension: `action_noise` (after the tanh) if set, or the last entry of
    `action_noise_schedule` that `env_steps` has reached; else SAC's learned std (before the
    tanh); `action_noise`'s std is `rotation_noise_scale` times smaller on the rotation
    commands; 0 outside `noise_dims`."""
    if config.action_noise > 0:
        noise = config.action_noise
        for start, scheduled in config.action_noise_schedule:
            if env_steps >= start:
                noise = scheduled
        std = np.full(ACTION_DIM, noise)
        std[ROTATION_DIMS] *= config.rotation_noise_scale
    else:
        std = np.exp(np.clip(log_std, -5.0, 1.0)).astype(np.float64)
    std[np.setdiff1d(np.arange(ACTION_DIM), config.noise_dims)] = 0.0
    return std


def _metric_rows(progress: _Progress) -> list[dict[str, str]]:
    """Every iteration's learner statistics and every evaluation, one CSV row each, by step."""
    rows = [
        {"step": str(i["env_steps"]), **{k: str(v) for k, v in i.items()}}
        for i in progress.iterations
    ]
    rows += [
        {
            "step": str(e["env_steps"]),
            "eval/success_rate": str(e["success_rate"]),
            **{
                f"eval/{task}/success_rate": str(guard["success_rate"])
                for task, guard in e.get("guard_tasks", {}).items()
            },
        }
        for e in progress.history
    ]
    return sorted(rows, key=lambda row: int(row["step"]))


@dataclass
class _Progress:
    """Counters and records a resumed run continues from (plain data, saved as a dict)."""

    env_steps: int = 0
    iteration: int = 0
    wall_time: float = 0.0
    last_eval: int = -1
    best_success: float = -1.0
    best_env_steps: int = -1  # the evaluation best.ckpt holds
    history: list[dict] = field(default_factory=list)  # one entry per evaluation
    iterations: list[dict] = field(default_factory=list)  # learner statistics per iteration
    # object scenes: {target object: [successes, episodes]} of the exploring episodes
    exploring_by_object: dict[str, list[int]] = field(default_factory=dict)


def gail(config: GailConfig, resume: bool = False) -> list[dict]:
    """Run (or with `resume`, continue) GAIL; returns the evaluations so far."""
    folder = Path(config.output_dir)
    if not resume and (folder / "learner.pt").exists():
        raise VismanipError(
            f"{folder} already holds a GAIL run; continue it with --resume {folder}, "
            "or pick another output_dir"
        )
    return GailRun(config).run(resume)
