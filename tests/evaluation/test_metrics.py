import pytest

from vismanip.evaluation.metrics import (
    EpisodeResult,
    success_by_object,
    summarize,
    wilson_interval,
)
from vismanip.evaluation.report import object_table


def test_wilson_interval_known_values():
    low, high = wilson_interval(45, 50)
    assert low == pytest.approx(0.786, abs=1e-3) and high == pytest.approx(0.957, abs=1e-3)
    assert wilson_interval(50, 50)[1] == 1.0 and wilson_interval(50, 50)[0] > 0.9
    assert wilson_interval(0, 10)[0] == 0.0


def test_summary_horizon_to_failure_counts_failures_only():
    results = [
        EpisodeResult(seed=0, success=True, length=40, episode_return=1.0, failed_at=None),
        EpisodeResult(seed=1, success=False, length=200, episode_return=0.0, failed_at=30),
        EpisodeResult(seed=2, success=False, length=200, episode_return=0.0, failed_at=None),
    ]
    summary = summarize(results, horizon=200)
    assert summary["success_rate"] == pytest.approx(1 / 3)
    assert summary["horizon_to_failure"] == pytest.approx((30 + 200) / 2)
    assert summary["unrecoverable_failures"] == 1
    assert summarize(results[:1], 200)["horizon_to_failure"] is None


def test_success_by_object_counts_each_drawn_object():
    def episode(seed: int, success: bool, target: str | None) -> EpisodeResult:
        return EpisodeResult(seed, success, 50, float(success), None, target_object=target)

    results = [episode(0, True, "ball"), episode(1, False, "ball"), episode(2, True, "can")]
    by_object = success_by_object(results)
    assert list(by_object) == ["ball", "can"]
    assert by_object["ball"]["episodes"] == 2 and by_object["ball"]["successes"] == 1
    assert by_object["can"]["success_ci95"] == list(wilson_interval(1, 1))
    assert success_by_object([episode(0, True, None)]) == {}

    table = object_table(
        {
            "seen": {"by_object": {"can": by_object["can"]}},
            "novel": {"by_object": {"ball": by_object["ball"]}},
            "plain": {},
        }
    )
    assert "| object | seen | novel |" in table  # runs without objects get no column
    assert "| ball | — | 1/2 (50%) |" in table and "| can | 1/1 (100%) | — |" in table
    assert object_table({"plain": {}}) == ""
