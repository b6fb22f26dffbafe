"""Collection throughput on the `local` and `ray` runner backends, side by side in one run.

For each backend and worker count: the start-up cost (workers built, Ray started when the
backend is ray) and then episodes/s of the scripted expert's collection episodes (images,
HDF5 shard per episode) once the workers are warm. Every configuration runs the same seeded
attempts. The rounds are interleaved (local, ray, local, ray, ...) so that a change in the
machine's load hits both backends alike; the table reports the median.

    python scripts/bench_scale.py --episodes 20 --rounds 2     # about 6 min on 2 cores
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from vismanip.data.collect import CollectAttempt
from vismanip.envs.tasks import EnvConfig
from vismanip.rollout.runner import EpisodeRunner, RunnerConfig, Scene


def one_round(backend: str, workers: int, episodes: int, size: int) -> tuple[float, float]:
    """(start-up seconds, warm episodes/s) for one runner."""
    scene = Scene(EnvConfig(task="lift", cameras=["agentview"], image_size=size))
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        with EpisodeRunner(workers, RunnerConfig(backend)) as runner:
            # one episode per worker builds every env: that is start-up too
            warm = [
                CollectAttempt(100_000 + i, scene, 0, 0.0, True, Path(scratch))
                for i in range(workers)
            ]
            list(runner.run(warm))
            startup = time.perf_counter() - started
            tasks = [CollectAttempt(i, scene, 0, 0.0, True, Path(scratch)) for i in range(episodes)]
            began = time.perf_counter()
            list(runner.run(tasks))
            rate = episodes / (time.perf_counter() - began)
    return startup, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", type=int, default=84)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for round_ in range(args.rounds):
        for workers in counts:
            for backend in ("local", "ray"):
                startup, rate = one_round(backend, workers, args.episodes, args.size)
                results.setdefault((backend, workers), []).append((startup, rate))
                print(
                    f"round {round_ + 1}: {backend:5} x{workers}  start-up {startup:5.1f} s  "
                    f"{rate:.2f} episodes/s",
                    flush=True,
                )
    print(
        f"\nLift expert episodes, {args.size}px agentview, {args.episodes} per round, median of "
        f"{args.rounds} rounds"
    )
    print(
        "| backend | workers | start-up (s) | episodes/s | vs local, same workers | vs 1 worker |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for (backend, workers), rows in results.items():
        startup = statistics.median(r[0] for r in rows)
        rate = statistics.median(r[1] for r in rows)
        local = statistics.median(r[1] for r in results[("local", workers)])
        single = statistics.median(r[1] for r in results[(backend, counts[0])])
        print(
            f"| {backend} | {workers} | {startup:.1f} | {rate:.2f} | {rate / local:.2f}x | "
            f"{rate / single:.2f}x |"
        )


if __name__ == "__main__":
    main()
