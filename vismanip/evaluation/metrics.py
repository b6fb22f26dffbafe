"""Per-run metrics from rollouts: success with a confidence interval, horizon-to-failure,
state coverage and state-visitation divergence."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    length: int
    episode_return: float
    failed_at: int | None  # step the episode became unrecoverable, if it did
    target_object: str | None = None  # object-set scenes: the object this episode drew


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval: sensible at 0% and 100%, unlike the normal approximation."""
    if trials == 0:
        return 0.0, 1.0
    rate = successes / trials
    denominator = 1 + z**2 / trials
    centre = (rate + z**2 / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z**2 / (4 * trials**2)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(results: list[EpisodeResult], horizon: int) -> dict:
    """Success rate (+ 95% CI), mean horizon-to-failure, episode length and return.

    Horizon-to-failure of a failed episode is the step at which it became unrecoverable
    (object off the work surface), or the horizon when it simply timed out; successful
    episodes never fail, so the mean is over failed episodes (None when there are none).
    """
    successes = sum(r.success for r in results)
    low, high = wilson_interval(successes, len(results))
    failures = [r for r in results if not r.success]
    horizons = [r.failed_at if r.failed_at is not None else horizon for r in failures]
    return {
        "episodes": len(results),
        "success_rate": successes / len(results) if results else 0.0,
        "success_ci95": [low, high],
        "horizon_to_failure": float(np.mean(horizons)) if horizons else None,
        "unrecoverable_failures": sum(r.failed_at is not None for r in failures),
        "episode_length": float(np.mean([r.length for r in results])) if results else 0.0,
        "return": float(np.mean([r.episode_return for r in results])) if results else 0.0,
    }


def success_by_object(results: list[EpisodeResult]) -> dict[str, dict]:
    """Success (+ 95% CI) per target object, for scenes that draw one per episode: a
    split's average hides which objects the policy cannot pick. Empty for other scenes."""
    by_object: dict[str, list[bool]] = {}
    for result in results:
        if result.target_object is not None:
            by_object.setdefault(result.target_object, []).append(result.success)
    table = {}
    for name in sorted(by_object):
        outcomes = by_object[name]
        table[name] = {
            "episodes": len(outcomes),
            "successes": sum(outcomes),
            "success_ci95": list(wilson_interval(sum(outcomes), len(outcomes))),
        }
    return table


STATE_CELL_M = 0.02  # side of the cubes that state coverage counts


def visited_cells(positions: np.ndarray, cell: float = STATE_CELL_M) -> np.ndarray:
    """The distinct `cell`-sized cubes a trajectory of 3-D positions passed through."""
    return np.unique(np.floor(np.asarray(positions) / cell).astype(np.int64), axis=0)


def state_coverage(cells: list[np.ndarray]) -> int:
    """How many distinct cells a set of rollouts visited together: their diversity.

    A policy that repeats one motion covers few cells; one that wanders or adapts to each
    scene covers more. Compare it between splits of the same policy.
    """
    if not cells:
        return 0
    return int(len(np.unique(np.concatenate(cells), axis=0)))


def gaussian_kl(samples_p: np.ndarray, samples_q: np.ndarray, ridge: float = 1e-6) -> float:
    """KL(P || Q) between Gaussians fitted to two sets of state samples (rows).

    The state-visitation divergence DAgger reports: how far the states a policy visits
    lie from the expert's. A ridge keeps near-constant dimensions from blowing it up.
    """
    p, q = np.asarray(samples_p, np.float64), np.asarray(samples_q, np.float64)
    dim = p.shape[1]
    mean_p, mean_q = p.mean(axis=0), q.mean(axis=0)
    cov_p = np.cov(p, rowvar=False) + ridge * np.eye(dim)
    cov_q = np.cov(q, rowvar=False) + ridge * np.eye(dim)
    inverse_q = np.linalg.inv(cov_q)
    difference = mean_q - mean_p
    _, logdet_p = np.linalg.slogdet(cov_p)
    _, logdet_q = np.linalg.slogdet(cov_q)
    return float(
        0.5
        * (
            np.trace(inverse_q @ cov_p)
            + difference @ inverse_q @ difference
            - dim
            + logdet_q
            - logdet_p
        )
    )
