"""EpisodeRunner: persistent workers, policies sent between batches, results as they
finish or in order, errors as one line, and a caller may stop early. No simulator needed:
these tasks do not ask their worker for an env."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial

import pytest

from vismanip.envs.tasks import EnvConfig
from vismanip.errors import VismanipError
from vismanip.rollout.runner import EpisodeRunner, RolloutWorker, Scene


@dataclass
class WhoRuns:
    """Reports the worker's process, how many tasks it has run, and its policy."""

    index: int
    sleep: float = 0.0

    def __call__(self, worker: RolloutWorker) -> tuple[int, int, int, object]:
        time.sleep(self.sleep)
        counter = worker.cached("counter", lambda: [0])
        counter[0] += 1
        return self.index, os.getpid(), counter[0], worker.policy


@dataclass
class Fails:
    def __call__(self, worker: RolloutWorker) -> None:
        raise VismanipError("task 3 could not run")


def make_policy(name: str) -> str:
    return name


def test_workers_persist_across_calls_and_receive_new_policies():
    with EpisodeRunner(2) as runner:
        runner.set_policy(partial(make_policy, "first"))
        first = list(runner.run(WhoRuns(i, 0.05) for i in range(6)))
        runner.set_policy(partial(make_policy, "second"))
        second = list(runner.run(WhoRuns(i, 0.05) for i in range(6)))
    pids = {pid for _, pid, _, _ in first}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes
    assert {pid for _, pid, _, _ in second} == pids  # ... the same ones the second time
    assert max(count for *_, count, _ in second) > 3  # their state survived between calls
    assert {policy for *_, policy in first} == {"first"}
    assert {policy for *_, policy in second} == {"second"}


def test_ordered_results_follow_the_tasks_order():
    with EpisodeRunner(2) as runner:
        # early tasks sleep longest, so they finish last
        tasks = [WhoRuns(i, 0.2 if i < 2 else 0.0) for i in range(8)]
        unordered = [index for index, *_ in runner.run(tasks)]
        ordered = [index for index, *_ in runner.run(tasks, ordered=True)]
    assert sorted(unordered) == list(range(8)) and unordered != list(range(8))
    assert ordered == list(range(8))


def test_one_worker_runs_in_this_process_lazily():
    ran = []

    @dataclass
    class Record:
        index: int

        def __call__(self, worker: RolloutWorker) -> int:
            ran.append(self.index)
            return self.index

    with EpisodeRunner(1) as runner:
        results = runner.run(Record(i) for i in range(10))
        assert next(results) == 0 and ran == [0]  # a progress bar can show the first result
        assert [0, *results] == list(range(10))


def test_a_task_error_is_one_line_and_the_caller_may_stop_early():
    with EpisodeRunner(2) as runner:
        with pytest.raises(VismanipError, match="task 3 could not run"):
            list(runner.run([WhoRuns(0), Fails(), WhoRuns(1)]))
        for _ in runner.run(WhoRuns(i, 0.1) for i in range(100)):
            break  # stop early: the tasks still in flight must not leak into the next call
        assert sorted(index for index, *_ in runner.run(WhoRuns(i) for i in range(5))) == list(
            range(5)
        )


def test_bad_settings_are_one_line():
    with pytest.raises(VismanipError, match="workers must be at least 1"):
        EpisodeRunner(0)
    with pytest.raises(
        VismanipError, match="runner.backend must be one of local, ray, not 'slurm'"
    ):
        EpisodeRunner(1, backend="slurm")


@dataclass
class ImportsLightning:
    """A task whose module pulls in lightning (hence triton) after the worker rendered."""

    def __call__(self, worker: RolloutWorker) -> bool:
        import lightning  # noqa: F401

        return True


@dataclass
class Renders:
    """Builds the worker's env and renders its first frame."""

    scene: Scene

    def __call__(self, worker: RolloutWorker) -> int:
        return int(worker.env(self.scene).reset(0)["agentview_image"].mean() > 0)


@pytest.mark.sim
def test_a_worker_that_rendered_can_still_import_lightning():
    scene = Scene(EnvConfig(task="lift", image_size=32))
    with EpisodeRunner(2) as runner:
        assert list(runner.run([Renders(scene), Renders(scene)])) == [1, 1]
        assert list(runner.run([ImportsLightning(), ImportsLightning()])) == [True, True]


# A parent that dies without closing its runner (kill -9, the OOM killer, SIGTERM's
# default action) while its workers are mid-episode: the workers must not outlive it.
PARENT_KILLED_MID_EPISODE = """
import os, sys, time
from vismanip.rollout.runner import EpisodeRunner

class LongEpisode:
    def __call__(self, worker):
        open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()
        time.sleep(120)

if __name__ == "__main__":
    with EpisodeRunner(2) as runner:
        list(runner.run(LongEpisode() for _ in range(4)))
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may never be reaped in a container)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_workers_exit_when_their_parent_is_killed_mid_episode(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT_KILLED_MID_EPISODE)
    started = tmp_path / "started"
    started.mkdir()
    parent = subprocess.Popen([sys.executable, str(script), str(started)])
    try:
        deadline = time.monotonic() + 120
        while len(os.listdir(started)) < 2 and time.monotonic() < deadline:
            assert parent.poll() is None, "the parent script failed"
            time.sleep(0.2)
        workers = [int(name) for name in os.listdir(started)]
        assert len(workers) == 2 and all(_running(pid) for pid in workers)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 15
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in workers if _running(pid)]
    for pid in left:  # do not leave them sleeping after a failed test
        os.kill(pid, signal.SIGKILL)
    assert not left, "rollout workers outlived their killed parent"
