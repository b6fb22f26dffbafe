"""Persistent rollout workers vs a fresh process pool per call, side by side in one run.

1. Ten back-to-back 4-episode evaluations (what training's rollout callback and an RL loop
   do): one EpisodeRunner kept across the calls, against a new runner (new processes,
   robosuite import, GL probe, env build) for every call, as the code before the runner did.
2. With --dagger-baseline REV: a 3-round DAgger run with this code and with the code at git
   revision REV (checked out in a temporary worktree), on the same tiny data and BC policy.

    python scripts/bench_runner.py                       # part 1 (about 2 min on 2 cores)
    python scripts/bench_runner.py --dagger-baseline ead43d0
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vismanip.envs.tasks import EnvConfig
from vismanip.evaluation.evaluate import run_evaluation
from vismanip.policies import ImagePolicy, ImagePolicyConfig
from vismanip.policies.checkpoint import PolicyWeights
from vismanip.rollout.runner import EpisodeRunner, Scene

LOWDIM = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}


def bench_evaluations(calls: int, episodes: int, workers: int, horizon: int, size: int) -> None:
    scene = Scene(EnvConfig(task="lift", cameras=["agentview"], image_size=size, horizon=horizon))
    weights = PolicyWeights.of(ImagePolicy(ImagePolicyConfig(cameras=["agentview"]), size, LOWDIM))

    start = time.perf_counter()
    with EpisodeRunner(workers) as runner:
        for call in range(calls):
            runner.set_policy(weights)  # new weights every call, as in training
            run_evaluation(runner, scene, episodes, seed=call)
    persistent = time.perf_counter() - start

    start = time.perf_counter()
    for call in range(calls):
        with EpisodeRunner(workers) as runner:
            runner.set_policy(weights)
            run_evaluation(runner, scene, episodes, seed=call)
    fresh = time.perf_counter() - start

    print(
        f"{calls} evaluations x {episodes} episodes ({horizon} steps, {size}px, {workers} workers)"
    )
    print(f"  fresh pool per call   {fresh:7.1f} s")
    print(f"  persistent runner     {persistent:7.1f} s")
    print(f"  speed-up              {fresh / persistent:7.2f}x")


def bench_dagger(baseline: str, workers: int) -> None:
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        cli = [sys.executable, "-m", "vismanip.cli"]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True}
        subprocess.run(
            [*cli, "collect", "--task", "lift", "--episodes", "6", "--workers", str(workers),
             "--size", "32", "--out", str(tmp / "lift.hdf5")], **quiet,
        )  # fmt: skip
        subprocess.run(
            [*cli, "train", f"data={tmp / 'lift.hdf5'}", f"output_dir={tmp / 'bc'}",
             "trainer.max_epochs=2", "rollout.every_n_epochs=0", "task=lift",
             "loader.batch_size=32"], **quiet,
        )  # fmt: skip
        old_tree = tmp / "baseline"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "-f", str(old_tree), baseline],
                       **quiet)  # fmt: skip
        try:
            times = {}
            for name, code in (("baseline " + baseline, old_tree), ("this code", root)):
                env = dict(os.environ, PYTHONPATH=str(code))
                start = time.perf_counter()
                subprocess.run(
                    [*cli, "dagger", "--config", str(root / "configs/dagger/lift.yaml"),
                     f"init={tmp / 'bc' / 'last.ckpt'}", f"output_dir={tmp / name.split()[0]}",
                     "rounds=3", "episodes_per_round=4", "epochs_per_round=1",
                     "eval_episodes=4", f"workers={workers}", "loader.batch_size=32"],
                    cwd=code, env=env, **quiet,
                )  # fmt: skip
                times[name] = time.perf_counter() - start
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "-f", str(old_tree)],
                           **quiet)  # fmt: skip
    print(f"3-round DAgger (4 episodes and 4 evaluation episodes a round, {workers} workers)")
    for name, seconds in times.items():
        print(f"  {name:<22}{seconds:7.1f} s")
    old, new = times.values()
    print(f"  speed-up              {old / new:7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--horizon", type=int, default=50, help="steps per episode")
    parser.add_argument("--size", type=int, default=84)
    parser.add_argument("--dagger-baseline", help="git revision to time DAgger against")
    args = parser.parse_args()
    bench_evaluations(args.calls, args.episodes, args.workers, args.horizon, args.size)
    if args.dagger_baseline:
        bench_dagger(args.dagger_baseline, args.workers)


if __name__ == "__main__":
    main()
