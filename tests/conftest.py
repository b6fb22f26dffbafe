"""Shared fixtures: tiny synthetic datasets made on the fly (no simulator needed)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vismanip.data.hdf5 import assemble_dataset, write_episode_file
from vismanip.rollout.episode import Episode

IMAGE_SIZE = 32
ENV_ARGS = json.dumps({"env_name": "Lift", "env_type": 1, "env_kwargs": {"robots": "Panda"}})


def make_episode(steps: int, seed: int) -> Episode:
    """A fake episode with robomimic's keys: one camera, proprio, object state."""
    rng = np.random.default_rng(seed)
    episode = Episode(seed=seed, success=True)
    for t in range(steps + 1):
        episode._record_obs(
            {
                "agentview_image": rng.integers(
                    0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8
                ),
                "robot0_eef_pos": rng.normal(size=3),
                "object": rng.normal(size=10),
            }
        )
        if t < steps:
            episode.actions.append(rng.uniform(-1, 1, size=7))
            episode.rewards.append(float(t == steps - 1))
            episode.dones.append(t == steps - 1)
            episode.states.append(rng.normal(size=20))
    return episode


def write_dataset(path: Path, lengths: list[int], valid_fraction: float = 0.34) -> list[Episode]:
    episodes = [make_episode(steps, seed) for seed, steps in enumerate(lengths)]
    shards = []
    for index, episode in enumerate(episodes):
        shard = path.parent / f"shard_{index}.hdf5"
        write_episode_file(shard, episode, attempt=index, model_xml="<mujoco/>")
        shards.append((shard, "demo"))
    assemble_dataset(path, shards, ENV_ARGS, len(lengths), valid_fraction, 0, "{}")
    return episodes


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> tuple[Path, list[Episode]]:
    """A valid 3-demo dataset at 32x32 and the episodes it was written from."""
    path = tmp_path / "tiny.hdf5"
    return path, write_dataset(path, [5, 7, 6])


def run_cli(*args: str, timeout: int = 600, returncode: int = 0) -> subprocess.CompletedProcess:
    """`vismanip ARGS` in a subprocess, as a user runs it; the test fails on another exit code."""
    result = subprocess.run(
        [sys.executable, "-m", "vismanip.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == returncode, result.stderr[-3000:]
    return result


def run_in_process(*args: str) -> tuple[int, str, str]:
    """`vismanip ARGS` in this process with `main()`'s error handling: (exit status,
    stdout, stderr). Whatever else escapes is a traceback a user would see: it propagates
    and fails the test. Cheap enough to run a command per generated case."""
    from vismanip import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main_with_args(list(args))
            status = 0
        except SystemExit as exit_:
            status = int(exit_.code or 0)
    return status, out.getvalue(), err.getvalue()


PROGRESS_BAR = re.compile(r"\|[^|]*\| *\d+/\d+")  # tqdm's "42%|####  | 2/3"


def one_line_error(status: int, err: str, command: str) -> None:
    """The command failed the way a user error must: status 1 and one `error:` line."""
    shown = [line.split("\r")[-1] for line in err.splitlines()]  # what a terminal shows
    lines = [line for line in shown if line.strip() and not PROGRESS_BAR.search(line)]
    assert status == 1 and len(lines) == 1 and lines[0].startswith("error: "), (command, err)


def collect_lift(out: Path, episodes: int = 3, size: int = 32) -> None:
    """A small real Lift dataset from the scripted expert (`vismanip collect`, one worker)."""
    run_cli(
        "collect", "--task", "lift", "--episodes", str(episodes), "--workers", "1",
        "--size", str(size), "--out", str(out),
    )  # fmt: skip


CHROMIUM = "/usr/bin/chromium-headless-shell"  # Debian's package; `make test` installs it


def open_in_chromium(page: Path, screenshot: Path) -> list[tuple[str, int]]:
    """Open an HTML file from disk in headless Chromium, as a person double-clicking it
    would; screenshot the whole page; return (src, natural width) of every image (0 when
    an image did not load)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        tab = browser.new_page()
        tab.goto(page.resolve().as_uri(), wait_until="load")
        images = tab.evaluate(
            "Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])"
        )
        tab.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return [(src, width) for src, width in images]
