"""Checkpoint selection during training and the reported evaluation use disjoint episodes."""

from __future__ import annotations

from typing import Any

import pytest

from vismanip.evaluation.evaluate import run_evaluation
from vismanip.rollout.episode import EVAL_STREAM, episode_seed


class _Stop(Exception):
    pass


class SeedRecorder:
    """Stands in for the EpisodeRunner: keeps the seeds it was asked to run, runs none."""

    def __init__(self) -> None:
        self.seeds: list[int] = []

    def run(self, tasks: Any) -> Any:
        self.seeds = [task.seed for task in tasks]
        raise _Stop


def seeds_of(episodes: int, for_selection: bool) -> list[int]:
    runner = SeedRecorder()
    with pytest.raises(_Stop):
        run_evaluation(runner, scene=None, episodes=episodes, for_selection=for_selection)  # type: ignore[arg-type]
    return runner.seeds


def test_selection_episodes_are_never_the_reported_ones():
    reported = seeds_of(200, for_selection=False)
    assert reported == [episode_seed(0, i, EVAL_STREAM) for i in range(200)]
    selection = seeds_of(200, for_selection=True)
    assert len(set(selection)) == 200
    assert not set(selection) & set(reported)
