"""DAgger (Ross, Gordon & Bagnell, 2011): let the learner drive, ask the expert what it would
have done in the states the learner actually visited, aggregate the labels, retrain, repeat.

Everything a resumed run needs is on disk, in `output_dir`:

    config.yaml, run.json          resolved config, seed, git revision
    aggregated.hdf5                expert demos (mask/round_0) + each round's labels (round_k)
    round_k/episodes/              the round's labelled episodes, one atomic file each
    round_k/train/                 the BC run retrained on aggregated.hdf5 after round k
    dagger.json, dagger.md, dagger.png   per-round diagnostics

A killed run continues (`vismanip dagger --resume DIR`) from the last finished episode,
aggregation, training epoch or evaluation.
"""

from __future__ import annotations

import importlib
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import yaml

from vismanip.algos.bc import OptimConfig, RolloutConfig, TrainConfig, TrainerConfig, train
from vismanip.config import config_from_dict, load_run_config, run_metadata
from vismanip.data.datamodule import LoaderConfig
from vismanip.data.hdf5 import append_demos, demo_names, open_dataset, write_episode_file
from vismanip.data.validate import require_valid_dataset
from vismanip.envs.tasks import task_spec
from vismanip.envs.vision_env import VisionEnv
from vismanip.errors import VismanipError
from vismanip.evaluation.evaluate import run_evaluation
from vismanip.evaluation.html_report import write_html_report
from vismanip.evaluation.metrics import gaussian_kl
from vismanip.evaluation.report import dagger_table, plot_dagger_rounds
from vismanip.experts import expert_actor
from vismanip.files import atomic_write, write_text_atomic
from vismanip.policies import ImagePolicyConfig
from vismanip.policies.checkpoint import PolicyWeights, load_policy
from vismanip.progress import progress_bar
from vismanip.rollout.episode import (
    DAGGER_STREAM,
    ActionWithExtras,
    Actor,
    Episode,
    episode_seed,
    rollout,
)
from vismanip.rollout.runner import EpisodeRunner, RolloutWorker, RunnerConfig, Scene


@dataclass
class QueryConfig:
    """When the expert is asked: label-budget savings.

    every: label only every k-th visited state.
    disagreement: > 0 labels only states where the learner's action differs from the
        expert's by more than this (largest absolute difference over the action's dims).
    """

    every: int = 1
    disagreement: float = 0.0


@dataclass
class DaggerConfig:
    """`vismanip dagger --config configs/dagger/lift.yaml init=runs/<bc>/best.ckpt key=value`.

    init: the round-0 learner, a BC checkpoint; its architecture is kept every round.
    data: its expert demos ("": the dataset `init` was trained on).
    task: where rounds roll out and are evaluated ("": init's task), e.g. lift_perturbed.
    objects, clutter: the rounds' object set and distractors (as `collect`; `--object-set`,
        `--clutter`); [] and -1 keep init's. Retrained checkpoints keep the demos' scene.
    expert: "scripted" (the task's oracle), "checkpoint:PATH" (a trained policy), or
        "package.module:factory" where factory(task, env) returns an obs -> action
        callable (teleoperation, a planner, ...).
    beta: probability that the expert's action is executed in round i (1-based):
        constant:B, linear:K (1 in round 1, falling to 0 from round K+1), exp:P (P**(i-1)).
    retrain: warm (start each round from the previous round's policy) or scratch.
    workers, runner: how many rollout workers, and where they live (`runner.backend=ray`).
    """

    init: str = ""
    data: str = ""
    output_dir: str = "runs/dagger"
    task: str = ""
    objects: list[str] = field(default_factory=list)
    clutter: int = -1
    expert: str = "scripted"
    rounds: int = 6
    episodes_per_round: int = 20
    beta: str = "linear:3"
    retrain: str = "warm"
    epochs_per_round: int = 10
    eval_episodes: int = 20
    workers: int = 2
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    seed: int = 0
    query: QueryConfig = field(default_factory=QueryConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


# --------------------------------------------------------------------------- pieces


def beta_schedule(spec: str) -> Callable[[int], float]:
    """β for round i (1-based) from "constant:B", "linear:K" or "exp:P"."""
    kind, _, value = spec.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if kind == "constant" and 0.0 <= number <= 1.0:
        return lambda i: number
    if kind == "linear" and number >= 1:
        return lambda i: max(0.0, 1.0 - (i - 1) / number)
    if kind == "exp" and 0.0 <= number <= 1.0:
        return lambda i: number ** (i - 1)
    raise VismanipError(
        f"beta={spec!r}: expected constant:B (0<=B<=1), linear:K (K>=1) or exp:P (0<=P<=1)"
    )


def expert_factory(spec: str, task: str) -> Callable[[VisionEnv], Actor]:
    """env -> obs->action callable: the scripted oracle, or a user's factory(task, env)."""
    if spec == "scripted":
        return partial(expert_actor, task)
    if spec.startswith("checkpoint:"):  # another (e.g. privileged or larger) trained policy
        return partial(_policy_expert, load_policy(spec.removeprefix("checkpoint:")).weights)
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError):
        raise VismanipError(
            f"expert={spec!r}: expected 'scripted', 'checkpoint:PATH' or an importable "
            "'package.module:factory'"
        ) from None
    return partial(factory, task)


def _policy_expert(weights: PolicyWeights, env: VisionEnv) -> Actor:
    return weights.build().select_action


def labeled_segments(episode: Episode, labels: list[np.ndarray | None]) -> list[Episode]:
    """The runs of consecutive labelled steps as demos whose actions are the expert's labels.

    Each demo keeps robomimic's layout (obs[t], next_obs[t] = obs[t + 1]), so sparse labels
    (query.every > 1) become several short demos rather than a demo with gaps.
    """
    segments, start = [], None
    for t, label in enumerate([*labels, None]):
        if label is not None and start is None:
            start = t
        elif label is None and start is not None:
            segment = Episode(seed=episode.seed, success=episode.success)
            segment.observations = {
                key: frames[start : t + 1] for key, frames in episode.observations.items()
            }
            segment.actions = [label for label in labels[start:t] if label is not None]
            segment.rewards = episode.rewards[start:t]
            segment.dones = episode.dones[start:t]
            segment.states = episode.states[start:t]
            segments.append(segment)
            start = None
    return segments


def visited_states(observations: Mapping, object_key: str) -> np.ndarray:
    """(T, 6) end-effector and object positions: the state the divergence is measured on.

    `observations` is an episode's per-key frame lists or a demo's HDF5 `obs` group.
    """
    return np.concatenate(
        [
            np.asarray(observations["robot0_eef_pos"]),
            np.asarray(observations[f"{object_key}_pos"]),
        ],
        axis=1,
    )


# --------------------------------------------------------------------------- one episode


@dataclass
class DaggerEpisode:
    """Runner task: one β-mixture episode with the worker's learner, labelled by the expert.

    Returns the episode's labelled demos, its stats and the scene's model XML.
    """

    index: int
    seed: int
    beta: float
    query: QueryConfig
    scene: Scene
    expert: str

    def __call__(self, worker: RolloutWorker) -> tuple[int, list[Episode], dict, str]:
        env = worker.env(self.scene)
        task = self.scene.env.task
        make_expert = worker.cached(
            ("expert", self.expert, task), lambda: expert_factory(self.expert, task)
        )
        learner = worker.policy
        learner.reset()
        episode = rollout(env, self._mixture(learner, make_expert(env)), self.seed, record=True)
        labels = episode.extras["label"]
        stats = {
            "index": self.index,
            "seed": self.seed,
            "success": episode.success,
            "length": len(episode),
            "labels": sum(label is not None for label in labels),
            "states": visited_states(episode.observations, env.spec.object_key).tolist(),
        }
        return self.index, labeled_segments(episode, labels), stats, env.model_xml()

    def _mixture(self, learner, expert: Actor) -> Actor:
        """Execute the expert's action with probability β, else the learner's; keep the
        expert's label (None: not asked) as the step's extra."""
        coin = np.random.default_rng([self.seed, DAGGER_STREAM])
        beta, query = self.beta, self.query
        step = 0

        def act(obs: dict[str, np.ndarray]) -> ActionWithExtras:
            nonlocal step
            proposed = learner.select_action(obs)
            wanted = step % query.every == 0
            step += 1
            label = np.asarray(expert(obs), dtype=np.float64) if wanted or beta > 0 else None
            # (label is None only when β = 0: then no coin is drawn, as before)
            executed = (
                label if label is not None and beta > 0 and coin.random() < beta else proposed
            )
            if (
                wanted
                and query.disagreement > 0
                and np.abs(proposed - label).max() <= query.disagreement
            ):
                wanted = False  # the learner already agrees: save the label
            return ActionWithExtras(executed, {"label": label if wanted else None})

        return act


# --------------------------------------------------------------------------- the loop


def _store_episode(
    folder: Path, index: int, segments: list[Episode], stats: dict, model_xml: str
) -> None:
    """The episode's labelled demos, then its stats file, which marks it done."""
    for s, segment in enumerate(segments):
        write_episode_file(folder / f"episode_{index:04d}_{s:04d}.hdf5", segment, index, model_xml)
    stats["segments"] = len(segments)
    marker = folder / f"episode_{index:04d}.json"
    write_text_atomic(marker, json.dumps(stats))


def _expert_states(path: Path, object_key: str) -> np.ndarray:
    with open_dataset(path) as file:
        names = [n.decode() for n in file["mask/round_0"][()]]
        return np.concatenate([visited_states(file[f"data/{n}/obs"], object_key) for n in names])


class DaggerRun:
    """One DAgger run in `config.output_dir`; `run()` does (or finishes) every round."""

    def __init__(self, config: DaggerConfig) -> None:
        self.config = config
        self.dir = Path(config.output_dir)
        self.beta = beta_schedule(config.beta)
        if config.retrain not in ("warm", "scratch"):
            raise VismanipError(f"retrain must be 'warm' or 'scratch', not {config.retrain!r}")
        if config.query.every < 1:
            raise VismanipError(f"query.every must be at least 1, not {config.query.every}")
        if not config.init:
            raise VismanipError("no initial policy: pass init=runs/<bc_run>/best.ckpt")
        init = load_policy(config.init)
        self.init_train = init.train_config or {}
        self.policy_config = ImagePolicyConfig(**init.description["config"])
        self.data = Path(config.data or self.init_train.get("data", ""))
        if not self.data.is_file():
            raise VismanipError(f"expert demos {self.data or '(none)'} not found: pass data=PATH")
        require_valid_dataset(self.data, read_images=True)  # copied whole into the aggregate
        self.env_config = init.env_for(config.task).with_scene(config.objects, config.clutter)
        task = self.env_config.task
        expert_factory(config.expert, task)  # fail now, not in a worker
        self.scene = Scene(self.env_config)
        self.object_key = task_spec(task).object_key
        self.aggregated = self.dir / "aggregated.hdf5"
        self.history_path = self.dir / "dagger.json"

    # ------------------------------------------------------------------ driver
    def run(self) -> list[dict]:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "config.yaml").write_text(yaml.safe_dump(asdict(self.config), sort_keys=False))
        if not (self.dir / "run.json").exists():
            (self.dir / "run.json").write_text(run_metadata(self.config, self.config.seed))
        if not self.aggregated.exists():
            self._start_aggregate()
        history = self._history()
        # One set of workers for every round: each round only sends them new weights.
        with EpisodeRunner(
            self.config.workers, self.config.runner, self.env_config.render.backend
        ) as self.runner:
            if not history:
                history.append(self._evaluate(0, Path(self.config.init), labels_round=None))
                self._save(history)
            for round_index in range(len(history), self.config.rounds + 1):
                history.append(self._round(round_index, history))
                self._save(history)
        return history

    def _round(self, k: int, history: list[dict]) -> dict:
        beta = self.beta(k)
        learner = Path(history[-1]["checkpoint"])
        episodes = self._collect_round(k, beta, learner)
        self._aggregate(k, episodes)
        checkpoint = self._retrain(k, learner)
        states = np.concatenate([np.asarray(e["states"]) for e in episodes])
        entry = self._evaluate(k, checkpoint, labels_round=sum(e["labels"] for e in episodes))
        entry.update(
            beta=beta,
            rollout_success=float(np.mean([e["success"] for e in episodes])),
            divergence_kl=gaussian_kl(states, _expert_states(self.aggregated, self.object_key)),
        )
        return entry

    # ------------------------------------------------------------------ steps
    def _collect_round(self, k: int, beta: float, learner: Path) -> list[dict]:
        """β-mixture episodes with expert labels; each finished episode is kept on disk."""
        folder = self.dir / f"round_{k}" / "episodes"
        folder.mkdir(parents=True, exist_ok=True)
        done = {int(p.stem.split("_")[1]) for p in folder.glob("episode_*.json")}
        todo = [i for i in range(self.config.episodes_per_round) if i not in done]
        remaining = self.config.episodes_per_round - len(done)
        if remaining:
            self.runner.set_policy(load_policy(learner).weights)
            tasks = (
                DaggerEpisode(
                    i,
                    episode_seed(self.config.seed, k * 100_000 + i, DAGGER_STREAM),
                    beta,
                    self.config.query,
                    self.scene,
                    self.config.expert,
                )
                for i in todo
            )
            # Each episode is stored as soon as it ends: a kill loses only those running.
            for result in progress_bar(
                self.runner.run(tasks), total=remaining, desc=f"round {k} (β={beta:.2f})", unit="ep"
            ):
                _store_episode(folder, *result)
        return [
            json.loads((folder / f"episode_{i:04d}.json").read_text())
            for i in range(self.config.episodes_per_round)
        ]

    def _start_aggregate(self) -> None:
        """aggregated.hdf5 = the expert demos, with mask/round_0 naming all of them."""
        with open_dataset(self.data) as file:
            names = demo_names(file)
        with atomic_write(self.aggregated) as tmp:
            shutil.copyfile(self.data, tmp)
            with h5py.File(tmp, "a") as file:
                file.create_dataset("mask/round_0", data=np.array(names, dtype="S"))
                file["data"].attrs["labels_round_0"] = int(
                    sum(file[f"data/{n}"].attrs["num_samples"] for n in names)
                )

    def _aggregate(self, k: int, episodes: list[dict]) -> None:
        with open_dataset(self.aggregated) as file:
            if f"mask/round_{k}" in file:
                return  # done before a restart
        folder = self.dir / f"round_{k}" / "episodes"
        shards = [
            folder / f"episode_{e['index']:04d}_{s:04d}.hdf5"
            for e in episodes
            for s in range(e["segments"])
        ]
        append_demos(
            self.aggregated, shards, f"round_{k}", labels=sum(e["labels"] for e in episodes)
        )

    def _retrain(self, k: int, learner: Path) -> Path:
        run_dir = self.dir / f"round_{k}" / "train"
        finished = run_dir / "finished"
        if finished.exists():
            return run_dir / "last.ckpt"
        # The init run's settings (policy, augmentation), retargeted at the aggregate.
        config = replace(
            config_from_dict(TrainConfig, self.init_train),
            data=str(self.aggregated),
            output_dir=str(run_dir),
            seed=self.config.seed + k,
            task=self.env_config.task,
            policy=self.policy_config,
            init_checkpoint=str(learner) if self.config.retrain == "warm" else "",
            loader=self.config.loader,
            optim=self.config.optim,
            trainer=TrainerConfig(max_epochs=self.config.epochs_per_round),
            rollout=RolloutConfig(every_n_epochs=0),
        )
        resume = (run_dir / "last.ckpt").exists()
        if resume:
            config = load_run_config(TrainConfig, run_dir)
        train(config, resume=resume)
        finished.write_text("")
        return run_dir / "last.ckpt"

    def _evaluate(self, k: int, checkpoint: Path, labels_round: int | None) -> dict:
        self.runner.set_policy(load_policy(checkpoint).weights)
        summary = run_evaluation(
            self.runner, self.scene, self.config.eval_episodes, self.config.seed, show_progress=True
        ).summary
        with open_dataset(self.aggregated) as file:
            attrs = file["data"].attrs
            total = sum(int(attrs.get(f"labels_round_{i}", 0)) for i in range(k + 1))
        return {
            "round": k,
            "checkpoint": str(checkpoint),
            "labels_round": labels_round,
            "labels_total": total,
            "success_rate": summary["success_rate"],
            "success_ci95": summary["success_ci95"],
            "horizon_to_failure": summary["horizon_to_failure"],
            "episode_length": summary["episode_length"],
        }

    # ------------------------------------------------------------------ records
    def _history(self) -> list[dict]:
        if not self.history_path.exists():
            return []
        return json.loads(self.history_path.read_text())["rounds"]

    def _save(self, history: list[dict]) -> None:
        record = {"task": self.env_config.task, "rounds": history}
        write_text_atomic(self.history_path, json.dumps(record, indent=2))
        (self.dir / "dagger.md").write_text(dagger_table(history))
        plot_dagger_rounds(history, self.dir / "dagger.png")
        write_html_report(self.dir, f"DAgger on {self.env_config.task}: {self.dir}")


def dagger(config: DaggerConfig, resume: bool = False) -> list[dict]:
    """Run (or with `resume`, continue) DAgger; returns the per-round history."""
    folder = Path(config.output_dir)
    if not resume and (folder / "config.yaml").exists():
        raise VismanipError(
            f"{folder} already holds a DAgger run; continue it with --resume {folder}, "
            "or pick another output_dir"
        )
    config.runner.check()
    return DaggerRun(config).run()
