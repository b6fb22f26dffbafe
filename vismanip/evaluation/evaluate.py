"""Evaluate a policy by rollouts in the simulator: seeded episodes on the shared runner,
metrics per episode and over the run. Reports are drawn by `evaluation/report.py`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vismanip.envs.tasks import task_spec
from vismanip.errors import VismanipError
from vismanip.evaluation.metrics import (
    EpisodeResult,
    state_coverage,
    success_by_object,
    summarize,
    visited_cells,
)
from vismanip.progress import progress_bar
from vismanip.rollout.episode import EVAL_STREAM, SELECT_STREAM, episode_seed, rollout
from vismanip.rollout.runner import EpisodeRunner, RolloutWorker, Scene


@dataclass
class EvalOutcome:
    """One evaluated episode, as a worker sends it back."""

    index: int
    result: EpisodeResult
    frames: np.ndarray | None  # recorded: (T + 1, H, W * cameras, 3), cameras side by side
    first_frame: np.ndarray  # (H, W * cameras, 3)
    visited: np.ndarray  # state-coverage cells the end effector passed through


@dataclass
class EvalEpisode:
    """Runner task: episode `index` with the worker's current policy in `scene`."""

    index: int
    seed: int
    record: bool
    scene: Scene

    def __call__(self, worker: RolloutWorker) -> EvalOutcome:
        policy, env = worker.policy, worker.env(self.scene)
        policy.reset()
        episode = rollout(env, policy.select_action, self.seed, record=self.record)
        result = EpisodeResult(
            seed=self.seed,
            success=episode.success,
            length=len(episode),
            episode_return=float(np.sum(episode.rewards)),
            failed_at=episode.failed_at,
            target_object=env.target_object,
        )
        frames = None
        if self.record:
            stacked = episode.stacked_obs()
            frames = np.concatenate([stacked[key] for key in policy.image_keys], axis=2)
        first = np.concatenate([episode.first_obs[key] for key in policy.image_keys], axis=1)
        return EvalOutcome(
            self.index, result, frames, first, visited_cells(np.stack(episode.eef_positions))
        )


@dataclass
class Evaluation:
    """What `run_evaluation` measured: summary, every episode, videos, first frames."""

    summary: dict
    episodes: list[EpisodeResult]
    videos: list[np.ndarray]  # the first `videos` episodes, (T, H, W * cameras, 3)
    first_frames: list[np.ndarray]  # every episode's first frame, cameras side by side


def run_evaluation(
    runner: EpisodeRunner,
    scene: Scene,
    episodes: int,
    seed: int = 0,
    videos: int = 0,
    show_progress: bool = False,
    desc: str = "eval",
    for_selection: bool = False,
) -> Evaluation:
    """Roll the runner's current policy out on `episodes` seeded episodes in `scene`.

    The scene's randomization changes each episode's looks (the visual-shift splits); the
    same seed gives the same initial state with or without it, so splits differ only in looks.
    `for_selection` draws the episodes from the stream that chooses checkpoints during
    training, disjoint from the one reported afterwards.
    """
    if episodes < 1:
        raise VismanipError(f"episodes must be at least 1, not {episodes}")
    stream = SELECT_STREAM if for_selection else EVAL_STREAM
    tasks = (
        EvalEpisode(i, episode_seed(seed, i, stream), i < videos, scene) for i in range(episodes)
    )
    outcomes: list[EvalOutcome] = []
    successes = 0
    with progress_bar(total=episodes, show=show_progress, desc=desc, unit="ep") as bar:
        for outcome in runner.run(tasks):
            outcomes.append(outcome)
            successes += outcome.result.success
            bar.set_postfix(success=f"{successes}/{len(outcomes)}", refresh=False)
            bar.update(1)
    outcomes.sort(key=lambda outcome: outcome.index)
    results = [outcome.result for outcome in outcomes]
    horizon = scene.env.horizon or task_spec(scene.env.task).horizon
    summary = summarize(results, horizon)
    summary["state_coverage"] = state_coverage([outcome.visited for outcome in outcomes])
    by_object = success_by_object(results)
    if by_object:
        summary["by_object"] = by_object
    return Evaluation(
        summary,
        results,
        [outcome.frames for outcome in outcomes if outcome.frames is not None],
        [outcome.first_frame for outcome in outcomes],
    )
