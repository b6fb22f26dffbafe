"""Run an exported vismanip policy the way a robot computer would: torch only, fixed rate.

    python scripts/run_exported_policy.py lift_policy.pt            # TorchScript
    python scripts/run_exported_policy.py lift_policy.pt2           # torch.export
    python scripts/run_exported_policy.py lift_policy.onnx          # needs onnxruntime
    python scripts/run_exported_policy.py lift_policy.pt --steps 100 --stop-file /tmp/STOP

This file deliberately imports nothing from vismanip: copy it to the robot next to the
artifact. Replace `make_sensors` (cameras + proprio) and `send_to_robot` with your drivers.
Here they replay recorded observations (--inputs, an .npz keyed by input name) or produce
placeholder frames, and collect the commands instead of moving a robot.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

METADATA_FILE = "vismanip.json"
OUTPUT_NAMES = ["action", "fallback"]

# A human override: given (step, proposed action, fallback flag), return an action to send
# instead, or None to send the policy's. Teleoperation, a dead-man switch or a safety
# monitor plugs in here.
Override = Callable[[int, np.ndarray, bool], "np.ndarray | None"]


def load_policy(
    path: Path, device: str = "cpu"
) -> tuple[Callable[..., tuple[np.ndarray, np.ndarray]], dict]:
    """(run(*inputs) -> (action, fallback), metadata) for a .pt, .pt2 or .onnx artifact."""
    files = {METADATA_FILE: ""}
    if path.suffix == ".onnx":
        import onnxruntime

        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            providers.insert(0, "CUDAExecutionProvider")
        session = onnxruntime.InferenceSession(str(path), providers=providers)
        metadata = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_FILE])

        def run_onnx(*inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            feed = dict(zip(metadata["inputs"], inputs, strict=True))
            action, fallback = session.run(OUTPUT_NAMES, feed)
            return action, fallback

        return run_onnx, metadata
    if path.suffix == ".pt2":
        program = torch.export.load(str(path), extra_files=files)
        if device != "cpu":  # an exported program records its device; move it
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(program, device)
        module = program.module()
    else:
        with warnings.catch_warnings():  # torch >= 2.11 calls TorchScript deprecated; it works
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location=device, _extra_files=files)
    metadata = json.loads(files[METADATA_FILE])
    if metadata.get("stateful"):  # action chunking: call reset() at every episode's start
        module.reset()

    def run_torch(*inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            action, fallback = module(*(torch.from_numpy(x).to(device) for x in inputs))
        return action.cpu().numpy(), fallback.cpu().numpy()

    return run_torch, metadata


def make_sensors(metadata: dict, recorded: Path | None) -> Callable[[int], list[np.ndarray]]:
    """Inputs for step t in the artifact's order: camera frames, then the proprio vector."""
    if recorded is not None:
        arrays = np.load(recorded)
        columns = [arrays[name] for name in metadata["inputs"]]
        return lambda t: [column[t % len(column)][None] for column in columns]
    size = metadata["image_size"]
    proprio_size = sum(metadata["proprio_dims"])

    def placeholder(t: int) -> list[np.ndarray]:
        frames = [np.full((1, size, size, 3), 127, np.uint8) for _ in metadata["cameras"]]
        return frames + ([np.zeros((1, proprio_size), np.float32)] if proprio_size else [])

    return placeholder


def stop_file_override(path: Path | None, hold: np.ndarray) -> Override:
    """Example override: while `path` exists, send the hold action (a software e-stop)."""

    def override(step: int, action: np.ndarray, fallback: bool) -> np.ndarray | None:
        return hold if path is not None and path.exists() else None

    return override


def control_loop(
    policy: Callable[..., tuple[np.ndarray, np.ndarray]],
    sensors: Callable[[int], list[np.ndarray]],
    send_to_robot: Callable[[np.ndarray], None],
    override: Override,
    rate_hz: float,
    steps: int,
) -> dict:
    """Run the policy at a fixed rate; returns latency and timing statistics."""
    period = 1.0 / rate_hz
    latencies, overruns, fallbacks, overridden = [], 0, 0, 0
    next_tick = time.perf_counter()
    for step in range(steps):
        inputs = sensors(step)
        start = time.perf_counter()
        action, fallback = policy(*inputs)
        latencies.append(time.perf_counter() - start)
        command = override(step, action[0], bool(fallback[0]))
        overridden += command is not None
        fallbacks += bool(fallback[0])
        send_to_robot(action[0] if command is None else command)
        next_tick += period
        delay = next_tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:  # late: skip ahead rather than burst to catch up
            overruns += 1
            next_tick = time.perf_counter()
    ms = np.array(latencies) * 1e3
    return {
        "steps": steps,
        "rate_hz": rate_hz,
        "latency_ms_median": float(np.median(ms)),
        "latency_ms_p99": float(np.percentile(ms, 99)),
        "overruns": overruns,
        "fallbacks": fallbacks,
        "overridden": overridden,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument(
        "--rate", type=float, help="Hz (default: the control_freq it was trained at)"
    )
    parser.add_argument("--inputs", type=Path, help="recorded inputs (.npz keyed by input name)")
    parser.add_argument("--stop-file", type=Path, help="hold the robot while this file exists")
    parser.add_argument("--save-actions", type=Path, help="write the sent actions (.npy)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for inference")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    policy, metadata = load_policy(args.artifact, args.device)
    print(
        f"{args.artifact}: {metadata['format']} policy for {metadata['task']}, inputs "
        f"{metadata['inputs']}, {metadata['action_dim']}-d actions at {metadata['control_freq']} Hz"
    )
    sent: list[np.ndarray] = []
    stats = control_loop(
        policy,
        make_sensors(metadata, args.inputs),
        send_to_robot=sent.append,  # replace with your robot's command interface
        override=stop_file_override(args.stop_file, np.array(metadata["hold_action"], np.float32)),
        rate_hz=args.rate or metadata["control_freq"] or 20,
        steps=args.steps,
    )
    if args.save_actions:
        np.save(args.save_actions, np.stack(sent))
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
