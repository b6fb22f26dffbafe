"""Parallel, resumable collection of scripted-expert camera demos into one robomimic HDF5.

Attempt k always runs the episode seeded from (seed, k), whichever worker runs it, so a
dataset depends only on the config. Each finished attempt leaves a file in `<out>.parts/`
(the demo, or a `.failed` marker), written atomically; a killed run loses at most the
episodes in flight, and the same command picks up where it stopped. When enough demos
exist they are assembled, in attempt order, into `<out>` (also atomically) and the parts
are removed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from itertools import count
from pathlib import Path

from vismanip.config import run_metadata
from vismanip.data.hdf5 import assemble_dataset, demo_names, open_dataset, write_episode_file
from vismanip.envs.tasks import EnvConfig
from vismanip.envs.vision_env import env_args_json
from vismanip.errors import VismanipError
from vismanip.experts import expert_actor, expert_name
from vismanip.progress import progress_bar
from vismanip.rollout.episode import episode_seed, rollout
from vismanip.rollout.runner import EpisodeRunner, RolloutWorker, RunnerConfig, Scene
from vismanip.sim2real.randomization import RandomizationConfig

# Give up when the expert fails this often: something is wrong with the task or expert.
MAX_ATTEMPTS_PER_DEMO = 4


@dataclass
class CollectConfig:
    """One demo-collection job.

    env: the scene and cameras (see EnvConfig).
    episodes: demos wanted in the output (successful ones unless keep_failed).
    workers: simulator processes (each renders with its own GL context).
    runner: where the workers live (`runner.backend=ray runner.address=auto` for a Ray
        cluster; `out` must then be on a filesystem every node reaches).
    seed: base seed; attempt k runs the episode seeded from (seed, k).
    out: output HDF5 path.
    keep_failed: also keep unsuccessful episodes (their `success` attribute says so).
    expert_noise: std of Gaussian noise added to the expert's motion actions.
    valid_fraction: share of demos listed in mask/valid.
    randomization: domain randomization of every episode's scene (off by default);
        `randomization=configs/randomization/default.yaml` loads a preset. Each demo stores
        the params it was recorded with (attribute `randomization`).
    """

    env: EnvConfig = field(default_factory=EnvConfig)
    episodes: int = 200
    workers: int = 2
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    seed: int = 0
    out: str = "data/demos.hdf5"
    keep_failed: bool = False
    expert_noise: float = 0.0
    valid_fraction: float = 0.1
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)


def collect(config: CollectConfig, show_progress: bool = True) -> Path:
    """Collect until `config.episodes` demos exist in `config.out`; returns that path."""
    _check_config(config)
    out = Path(config.out)
    parts = out.with_name(out.name + ".parts")
    existing_demos, attempts_before = _existing_output(out, config)
    if existing_demos >= config.episodes and not parts.exists():
        return out
    parts.mkdir(parents=True, exist_ok=True)
    _check_same_settings(parts, config)

    finished = _finished_attempts(parts)
    kept = existing_demos + sum(1 for ok in finished.values() if ok or config.keep_failed)
    with progress_bar(
        total=config.episodes,
        initial=min(kept, config.episodes),
        desc="collect",
        unit="demo",
        show=show_progress,
    ) as progress:
        for success in _run_attempts(config, parts, finished, existing_demos, attempts_before):
            # an attempt that finished ahead of a slower earlier one may not count (the
            # dataset keeps the first attempts in order): the bar stops at the count asked
            if (success or config.keep_failed) and progress.n < config.episodes:
                progress.update(1)
            progress.set_postfix(attempts=len(finished) + attempts_before, refresh=False)
    _assemble(out, parts, config, finished, attempts_before)
    shutil.rmtree(parts)
    return out


def _check_config(config: CollectConfig) -> None:
    expert_name(config.env.task)  # an unknown task or one without an expert: one clear line
    if config.episodes < 1:
        raise VismanipError(f"episodes must be at least 1, not {config.episodes}")
    if config.workers < 1:
        raise VismanipError(f"workers must be at least 1, not {config.workers}")
    config.runner.check()
    if not 0.0 <= config.valid_fraction < 1.0:
        raise VismanipError(f"valid_fraction must be in [0, 1), not {config.valid_fraction}")
    if not config.env.cameras:
        raise VismanipError("at least one camera is needed (--camera agentview)")
    config.randomization.check(allow_heldout=False)
    config.env.check()


def _existing_output(out: Path, config: CollectConfig) -> tuple[int, int]:
    """(demos, attempts) already in a finished dataset at `out`, checked to match `config`."""
    if not out.exists():
        return 0, 0
    with open_dataset(out) as file:
        stored = json.loads(file["data"].attrs.get("vismanip_run", "{}")).get("config")
        if stored is None:
            raise VismanipError(
                f"{out} exists and was not made by `vismanip collect`; choose another --out"
            )
        _compare_settings(stored, config, str(out))
        return len(demo_names(file)), int(file["data"].attrs.get("attempts", 0))


def _settings(config: CollectConfig | dict) -> dict:
    """The parts of a config that change what an episode looks like."""
    values = asdict(config) if isinstance(config, CollectConfig) else config
    keys = ("env", "seed", "keep_failed", "expert_noise", "randomization")
    return {key: values.get(key, asdict(RandomizationConfig())) for key in keys}


def _compare_settings(stored: dict, config: CollectConfig, where: str) -> None:
    current = _settings(config)
    stored = _settings(stored)
    if stored != current:
        changed = [key for key in current if stored.get(key) != current[key]]
        raise VismanipError(
            f"{where} was collected with different settings ({', '.join(changed)}); "
            "use the same settings to continue it, or another --out"
        )


def _check_same_settings(parts: Path, config: CollectConfig) -> None:
    settings_file = parts / "config.json"
    if settings_file.exists():
        _compare_settings(json.loads(settings_file.read_text()), config, str(parts))
    else:
        settings_file.write_text(json.dumps(asdict(config), indent=2))


def _finished_attempts(parts: Path) -> dict[int, bool]:
    """attempt -> success, for every attempt that left a file (tmp files are discarded)."""
    finished = {}
    for path in parts.iterdir():
        if path.suffix == ".hdf5" and path.stem.startswith("attempt_"):
            finished[int(path.stem.split("_")[1])] = True
        elif path.suffix == ".failed":
            finished[int(path.stem.split("_")[1])] = False
        elif path.suffix == ".tmp":
            path.unlink()  # an episode that was being written when the run died
    return finished


def _attempt_path(parts: Path, attempt: int, kept: bool) -> Path:
    """A kept episode's file, or the marker of an attempt whose episode was dropped."""
    return parts / (f"attempt_{attempt:06d}" + (".hdf5" if kept else ".failed"))


def _enough(finished: dict[int, bool], existing: int, first: int, config: CollectConfig) -> bool:
    """True once the attempts first, first+1, ... finished without a gap hold enough demos.

    Counting a gap-free prefix (not whatever finished first) makes the dataset the same
    however many workers ran it and wherever it was interrupted.
    """
    kept, attempt = existing, first
    while attempt in finished and kept < config.episodes:
        kept += finished[attempt] or config.keep_failed
        attempt += 1
    return kept >= config.episodes


def _run_attempts(
    config: CollectConfig,
    parts: Path,
    finished: dict[int, bool],
    existing: int,
    first: int,
) -> Iterator[bool]:
    """Run attempts not yet in `finished` (in order), recording each; yield their success."""
    if _enough(finished, existing, first, config):
        return
    budget = first + MAX_ATTEMPTS_PER_DEMO * config.episodes + 10
    scene = Scene(config.env, config.randomization)
    todo = (
        CollectAttempt(attempt, scene, config.seed, config.expert_noise, config.keep_failed, parts)
        for attempt in count(first)
        if attempt not in finished and attempt < budget
    )
    with EpisodeRunner(config.workers, config.runner, config.env.render.backend) as runner:
        for attempt, success in runner.run(todo):
            finished[attempt] = success
            yield success
            if _enough(finished, existing, first, config):
                return
    raise VismanipError(
        f"the expert failed too often: {budget - first} attempts gave fewer than "
        f"{config.episodes} demos (finished episodes are kept in {parts})"
    )


@dataclass
class CollectAttempt:
    """Runner task: the expert's episode for one attempt, stored in `parts` as it ends."""

    attempt: int
    scene: Scene
    base_seed: int
    expert_noise: float
    keep_failed: bool
    parts: Path

    def __call__(self, worker: RolloutWorker) -> tuple[int, bool]:
        env = worker.env(self.scene)
        seed = episode_seed(self.base_seed, self.attempt)
        actor = expert_actor(self.scene.env.task, env, self.expert_noise, seed)
        episode = rollout(env, actor, seed)
        if episode.success or self.keep_failed:
            path = _attempt_path(self.parts, self.attempt, kept=True)
            write_episode_file(path, episode, self.attempt, env.model_xml())
        else:
            _attempt_path(self.parts, self.attempt, kept=False).touch()
        return self.attempt, episode.success


def _assemble(
    out: Path, parts: Path, config: CollectConfig, finished: dict[int, bool], first: int
) -> None:
    """Existing demos, then new ones in attempt order, until `episodes` demos.

    Attempts after the last one used are dropped (and not counted), so extending the
    dataset later continues exactly where one longer run would have.
    """
    sources: list[tuple[Path, str]] = []
    if out.exists():
        with open_dataset(out) as file:
            sources = [(out, f"data/{name}") for name in demo_names(file)]
    attempt = first
    while len(sources) < config.episodes:
        if finished[attempt] or config.keep_failed:
            sources.append((_attempt_path(parts, attempt, kept=True), "demo"))
        attempt += 1
    assemble_dataset(
        out,
        sources,
        env_args_json=env_args_json(config.env),
        attempts=attempt,
        valid_fraction=config.valid_fraction,
        split_seed=config.seed,
        run_metadata=run_metadata(config, config.seed),
    )
