"""GAIL's learner update with 1 vs 2 torch threads, side by side, alone and beside busy cores;
then, with 1 thread, D on the sim state against D on camera frames (`disc.input=image`).

During a GAIL run the rollout workers keep the cores busy while the learner updates; this
measures one `GailLearner.update` (D step + SAC step + BC term, batch 256, the Lift-sized
policy: 2 cameras' keypoints + proprio = 137 features, 19-D state) with each thread count,
first on an idle machine, then beside `--busy` processes that spin like rollout workers.
It is why `learner.threads` defaults to 1. The last table says what a D on 2 cameras'
42-px frames costs per update against one on the state (`disc.updates_every=1` here), and
what the leaner image settings cost (smaller frames and D batch, D every 4th update).

    python scripts/bench_gail_update.py              # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import numpy as np
import torch

from vismanip.algos.gail.configuration import GailConfig
from vismanip.algos.gail.learner import GailLearner
from vismanip.algos.gail.rollouts import STATE_DIM
from vismanip.algos.gail.transitions import transitions_td
from vismanip.policies import ImagePolicy, ImagePolicyConfig

LOWDIM = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}


def transitions(steps: int, features: int, seed: int, frame_size: int = 0):
    rng = np.random.default_rng(seed)
    frames = None
    if frame_size:  # 2 cameras, RGB
        frames = rng.integers(0, 256, (steps + 1, 6, frame_size, frame_size), dtype=np.uint8)
    return transitions_td(
        rng.normal(size=(steps + 1, features)).astype(np.float32),
        rng.normal(size=(steps + 1, STATE_DIM)).astype(np.float32),
        rng.uniform(-1, 1, size=(steps, 7)).astype(np.float32),
        np.zeros(steps, dtype=bool),
        np.zeros(steps, dtype=np.float32),
        frames,
    )


def learner(disc_input: str = "state", **disc: int) -> GailLearner:
    config = GailConfig()
    config.disc.pairs = "state"
    config.disc.input = disc_input
    for key, value in disc.items():
        setattr(config.disc, key, value)
    frame_size = config.disc.image_size if disc_input == "image" else 0
    policy = ImagePolicy(
        ImagePolicyConfig(cameras=["agentview", "robot0_eye_in_hand"], lowdim_keys=list(LOWDIM)),
        84,
        LOWDIM,
    )
    features = 2 * policy.config.feature_dim + sum(LOWDIM.values())
    built = GailLearner(policy, STATE_DIM, transitions(3000, features, 0, frame_size), config)
    built.add(transitions(20000, features, 1, frame_size))
    built.train()
    return built


def spin(stop) -> None:  # a busy core, as a rollout worker keeps it
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def ms_per_update(subject: GailLearner, threads: int, updates: int) -> float:
    torch.set_num_threads(threads)
    for _ in range(3):
        subject.update()
    started = time.perf_counter()
    for _ in range(updates):
        subject.update()
    return 1000 * (time.perf_counter() - started) / updates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--busy", type=int, default=2, help="spinning processes (workers)")
    args = parser.parse_args()
    torch.manual_seed(0)
    subject = learner()
    rows = []
    for label, busy in (("idle", 0), (f"beside {args.busy} busy processes", args.busy)):
        stop = multiprocessing.Event()
        spinners = [multiprocessing.Process(target=spin, args=(stop,)) for _ in range(busy)]
        for process in spinners:
            process.start()
        try:
            one, two = (ms_per_update(subject, t, args.updates) for t in (1, 2))
        finally:
            stop.set()
            for process in spinners:
                process.join()
        rows.append((label, one, two))
    print("| machine | 1 thread (ms/update) | 2 threads (ms/update) | 2 threads / 1 thread |")
    print("|---|---:|---:|---:|")
    for label, one, two in rows:
        print(f"| {label} | {one:.0f} | {two:.0f} | {two / one:.2f}x |")
    on_state = ms_per_update(subject, 1, args.updates)
    on_frames = ms_per_update(learner("image"), 1, args.updates)
    lean = {"image_size": 32, "batch_size": 64, "updates_every": 4}
    on_lean_frames = ms_per_update(learner("image", **lean), 1, args.updates)
    print()
    print("| D reads (1 thread, idle) | ms/update | / state |")
    print("|---|---:|---:|")
    print(f"| the sim state (19 numbers) | {on_state:.0f} | 1.00x |")
    print(f"| 2 cameras' frames at 42 px | {on_frames:.0f} | {on_frames / on_state:.2f}x |")
    print(
        "| frames at 32 px, `disc.batch_size=64`, `disc.updates_every=4` | "
        f"{on_lean_frames:.0f} | {on_lean_frames / on_state:.2f}x |"
    )


if __name__ == "__main__":
    main()
