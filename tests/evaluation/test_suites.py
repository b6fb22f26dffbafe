"""A suite can run some of its splits (`vismanip eval --suite generalization --splits ...`)."""

from __future__ import annotations

import pytest
from conftest import run_in_process

from vismanip.envs.objects import object_set
from vismanip.envs.tasks import EnvConfig
from vismanip.errors import VismanipError
from vismanip.evaluation.suites import suite_splits


def test_a_suite_runs_only_the_splits_asked_for_in_that_order():
    env = EnvConfig(task="lift", objects=object_set("train"))
    everything = suite_splits("generalization", env)
    assert len(everything) == 7
    some = suite_splits("generalization", env, ["novel", "seen", "clutter_4"])
    assert list(some) == ["novel", "seen", "clutter_4"]
    assert some["novel"].env.objects == everything["novel"].env.objects == object_set("novel")
    assert some["clutter_4"].env.clutter == 4
    with pytest.raises(VismanipError, match="unknown split 'clutter_9' of suite generalization"):
        suite_splits("generalization", env, ["seen", "clutter_9"])


def test_splits_without_a_suite_is_one_line(tmp_path):
    status, _, stderr = run_in_process("eval", str(tmp_path / "x.ckpt"), "--splits", "seen")
    assert status != 0
    assert stderr.strip() == "error: --splits picks splits of a --suite: pass --suite too"
