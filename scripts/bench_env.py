"""Environment speed, measured side by side in one run.

1. steps/s of the same task: physics only (robosuite, no cameras), our lean image
   observations, our image observations with robosuite's detailed meshes, and robosuite's
   own camera-observation path; each as a ratio to physics only.
2. collection throughput (scripted expert, images, HDF5 writing) with 1 vs 2 workers.

    python scripts/bench_env.py --task lift --size 84 --steps 200 --episodes 100
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
from vismanip.envs.tasks import EnvConfig, VisionEnv, import_robosuite


def steps_per_second(step, steps: int) -> float:
    for _ in range(5):  # warm-up
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def random_actions(seed: int = 0):
    rng = np.random.default_rng(seed)
    return lambda: rng.uniform(-0.3, 0.3, size=7)


def bench_steps(config: EnvConfig, steps: int) -> dict[str, float]:
    results = {}
    env = VisionEnv(config)
    env.reset(0)
    action = random_actions()
    results["physics only (robosuite, no camera)"] = steps_per_second(
        lambda: env.env.step(action()), steps
    )
    results["images, lean render (ours, default)"] = steps_per_second(
        lambda: env.step(action()), steps
    )
    env.close()
    visual = VisionEnv(replace(config, render=RenderConfig(robot_meshes="visual")))
    visual.reset(0)
    results["images, detailed meshes (ours)"] = steps_per_second(
        lambda: visual.step(action()), steps
    )
    visual.close()
    robosuite = import_robosuite()
    default = robosuite.make(
        env.spec.env_name,
        has_renderer=False,
        has_offscreen_renderer=True,
        use_camera_obs=True,
        camera_names=config.cameras,
        camera_heights=config.image_size,
        camera_widths=config.image_size,
        ignore_done=True,
        **env.robosuite_kwargs,
    )
    default.reset()
    results["images, robosuite's own renderer"] = steps_per_second(
        lambda: default.step(action()), steps
    )
    default.close()
    return results


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
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    config = EnvConfig(task=args.task, cameras=args.camera.split(","), image_size=args.size)

    print(
        f"# {args.task}, cameras {args.camera}, {args.size}x{args.size}, {args.steps} steps each\n"
    )
    results = bench_steps(config, args.steps)
    physics = results["physics only (robosuite, no camera)"]
    print("| env step | steps/s | ratio to physics |")
    print("|---|---:|---:|")
    for name, rate in results.items():
        print(f"| {name} | {rate:.1f} | {rate / physics:.2f} |")

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
