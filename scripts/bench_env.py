"""Environment speed, measured side by side in one run.

1. steps/s of the same task: physics only (robosuite, no cameras), our lean image
   observations, our image observations with robosuite's detailed meshes, and robosuite's
   own camera-observation path; each as a ratio to physics only.
2. collection throughput (scripted expert, images, HDF5 writing) with 1 vs 2 workers.

    python scripts/bench_env.py --task lift --size 84 --steps 200 --rounds 5 --episodes 100
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from vismanip.data.collect import CollectConfig, collect
from vismanip.data.validate import dataset_info
from vismanip.envs.rendering import RenderConfig
from vismanip.envs.tasks import EnvConfig
from vismanip.envs.vision_env import VisionEnv, import_robosuite


def random_actions(seed: int = 0):
    rng = np.random.default_rng(seed)
    return lambda: rng.uniform(-0.3, 0.3, size=7)


def bench_steps(config: EnvConfig, steps: int, rounds: int) -> dict[str, float]:
    """Median steps/s per variant over `rounds` interleaved rounds (load changes hit all)."""
    ours = VisionEnv(config)
    visual = VisionEnv(replace(config, render=RenderConfig(robot_meshes="visual")))
    robosuite = import_robosuite()
    default = robosuite.make(
        ours.spec.env_name,
        has_renderer=False,
        has_offscreen_renderer=True,
        use_camera_obs=True,
        camera_names=config.cameras,
        camera_heights=config.image_size,
        camera_widths=config.image_size,
        ignore_done=True,
        **ours.robosuite_kwargs,
    )
    ours.reset(0)
    visual.reset(0)
    default.reset()
    action = random_actions()
    variants = {
        "physics only (robosuite, no camera)": lambda: ours.env.step(action()),
        "images, lean render (ours, default)": lambda: ours.step(action()),
        "images, detailed meshes (ours)": lambda: visual.step(action()),
        "images, robosuite's own renderer": lambda: default.step(action()),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, step in variants.items():
            for _ in range(5):  # warm-up
                step()
            start = time.perf_counter()
            for _ in range(steps):
                step()
            rates[name].append(steps / (time.perf_counter() - start))
    for env in (ours, visual, default):
        env.close()
    return {name: float(np.median(values)) for name, values in rates.items()}


def bench_collection(config: EnvConfig, episodes: int, workers: int) -> tuple[float, float]:
    """(demos/s, env steps/s) for a full collection run into a temporary file."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "bench.hdf5"
        job = CollectConfig(env=config, episodes=episodes, workers=workers, out=str(out))
        start = time.perf_counter()
        collect(job, show_progress=False)
        elapsed = time.perf_counter() - start
        steps = dataset_info(out)["steps"]
    return episodes / elapsed, steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="lift")
    parser.add_argument("--camera", default="agentview")
    parser.add_argument("--size", type=int, default=84)
    parser.add_argument("--steps", type=int, default=200, help="steps per variant per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=100, help="0 skips the collection part")
    args = parser.parse_args()
    config = EnvConfig(task=args.task, cameras=args.camera.split(","), image_size=args.size)

    print(
        f"# {args.task}, cameras {args.camera}, {args.size}x{args.size}: median of "
        f"{args.rounds} interleaved rounds of {args.steps} steps\n"
    )
    results = bench_steps(config, args.steps, args.rounds)
    physics = results["physics only (robosuite, no camera)"]
    print("| env step | steps/s | ratio to physics |")
    print("|---|---:|---:|")
    for name, rate in results.items():
        print(f"| {name} | {rate:.1f} | {rate / physics:.2f} |")

    if args.episodes == 0:
        return
    print(f"\n# collection: {args.episodes} expert demos, images, HDF5 writing\n")
    print("| workers | demos/s | env steps/s | speed-up |")
    print("|---:|---:|---:|---:|")
    single = None
    for workers in (1, 2):
        demos_rate, steps_rate = bench_collection(config, args.episodes, workers)
        single = single or demos_rate
        print(f"| {workers} | {demos_rate:.2f} | {steps_rate:.1f} | {demos_rate / single:.2f} |")


if __name__ == "__main__":
    main()
