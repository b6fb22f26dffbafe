"""The ray backend: the same dataset as the local one, also when a worker is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from conftest import one_line_error, run_cli, run_in_process

pytest.importorskip("ray")  # the `ray` extra; `make test` installs it
pytestmark = pytest.mark.sim

COLLECT = ["collect", "--task", "lift", "--episodes", "6", "--workers", "2", "--size", "32"]


def _arrays(path) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as file:
        file.visititems(
            lambda name, item: (
                arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None
            )
        )
    return arrays


def _ray_worker_pids(busy: bool = False) -> list[int]:
    """Our actors' processes; `busy`: those inside a task now (Ray titles them
    `ray::_RayWorker.run` while the task runs)."""
    pattern = "ray::_RayWorker.run" if busy else "ray::_RayWorker"
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def test_ray_collection_equals_local_even_when_a_worker_is_killed(tmp_path):
    local, on_ray = tmp_path / "local.hdf5", tmp_path / "ray.hdf5"
    run_cli(*COLLECT, "--out", str(local), "--quiet")

    command = [sys.executable, "-m", "vismanip.cli", *COLLECT, "--out", str(on_ray), "--quiet"]
    # Its own process group: if this test fails or times out, the collect process and the
    # Ray instance it started (gcs, raylet, actors) are killed with it, not left running.
    process = subprocess.Popen(
        [*command, "runner.backend=ray"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        parts = tmp_path / "ray.hdf5.parts"
        deadline = time.time() + 300
        while not list(parts.glob("attempt_*.hdf5")) and time.time() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        # An actor inside an episode: killing an idle one (under load the episodes can all
        # be done by the time this loop looks) loses nothing and proves nothing.
        victims = _ray_worker_pids(busy=True)
        while not victims and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
            victims = _ray_worker_pids(busy=True)
        assert victims, "no Ray worker inside an episode to kill"
        killed = victims[0]
        subprocess.run(["kill", "-9", str(killed)], check=True)  # mid-episode: its episode is lost
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, err[-2000:]
    assert "runs again on a new worker" in err and "Traceback" not in err, err
    assert killed not in _ray_worker_pids()

    expected, got = _arrays(local), _arrays(on_ray)
    assert sorted(got) == sorted(expected)
    for name, array in expected.items():
        assert np.array_equal(got[name], array), name  # same seeds, same episodes, no repeats


def test_ray_settings_are_checked_in_one_line(tmp_path):
    status, _, err = run_in_process(
        *COLLECT, "--out", str(tmp_path / "x.hdf5"), "runner.backend=spark"
    )
    one_line_error(status, err, "backend")
    assert "runner.backend must be one of local, ray" in err
    status, _, err = run_in_process(
        *COLLECT, "--out", str(tmp_path / "x.hdf5"), "runner.address=auto"
    )
    one_line_error(status, err, "address without ray")
    assert not (tmp_path / "x.hdf5").exists() and not (tmp_path / "x.hdf5.parts").exists()
