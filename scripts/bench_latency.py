"""Batch-1 inference latency of a policy in each runtime a robot might use, side by side.

    python scripts/bench_latency.py                  # compact + resnet18, 1 and 2 cameras
    python scripts/bench_latency.py --encoders compact --iters 500 --out latency.md
    python scripts/bench_latency.py --device cuda     # each runtime on the GPU, + CPU eager

For every (encoder, cameras) pair: eager PyTorch, TorchScript, torch.export and ONNX Runtime
(when installed) run the same DeployablePolicy (preprocessing and safeguards included) on
one uint8 84x84 frame per camera plus proprio, on ONE CPU thread, interleaved round by
round so that background load hits every runtime alike. Prints median and p99 in ms and
each runtime's speed relative to eager. With `--device cuda` every runtime runs on the GPU
(uint8 frames in from the host, the action back to it, as on a robot), beside eager on the
CPU, and each row also gives the largest action difference from the CPU's eager output.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import vismanip.envs  # noqa: F401  (GL backend before anything imports mujoco)
from vismanip.export import DeployablePolicy, ExportedArtifact, build_metadata
from vismanip.export.deployable import example_inputs
from vismanip.export.formats import write_artifact
from vismanip.policies import ImagePolicy, ImagePolicyConfig
from vismanip.policies.artifact import FORMATS

CAMERA_SETS = {1: ["agentview"], 2: ["agentview", "robot0_eye_in_hand"]}
PROPRIO = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}


def runtimes(
    module: DeployablePolicy, folder: Path, device: str
) -> dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]]:
    """name -> callable(*inputs) for eager and every exportable format available here, on
    `device`; plus eager on the CPU when `device` is a GPU."""

    def eager_on(model: DeployablePolicy, on: str) -> Callable:
        def eager(*inputs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
            with torch.inference_mode():
                action, fallback = model(*(x.to(on) for x in inputs))
            return action.cpu().numpy(), fallback.cpu().numpy()

        return eager

    found = {"eager": eager_on(module, "cpu")}
    metadata = build_metadata(module.policy, None, None, "bench")
    artifacts = {}
    for fmt, extension in FORMATS.items():
        path = folder / f"policy{extension}"
        try:
            write_artifact(module, example_inputs(module.policy), path, fmt, metadata)
            artifacts[fmt] = ExportedArtifact(path, threads=1, device=device)
        except Exception as error:  # e.g. ONNX without onnxscript: report, keep going
            print(f"  {fmt}: skipped ({type(error).__name__}: {str(error)[:80]})")
    if device != "cpu":
        found = {
            "eager (cpu)": found["eager"],
            "eager": eager_on(copy.deepcopy(module).to(device), device),
        }
    for fmt, artifact in artifacts.items():
        if fmt == "onnx":
            found["onnxruntime"] = lambda *x, a=artifact: a(*(t.numpy() for t in x))
        else:
            found[fmt] = artifact
    return found


def measure(
    calls: dict[str, Callable], inputs: tuple, iters: int, warmup: int
) -> dict[str, np.ndarray]:
    """Per-call seconds for each runtime, interleaved: round r times every runtime once."""
    for call in calls.values():
        for _ in range(warmup):
            call(*inputs)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(iters):
        for name, call in calls.items():
            start = time.perf_counter()
            call(*inputs)
            times[name].append(time.perf_counter() - start)
    return {name: np.array(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoders", default="compact,resnet18")
    parser.add_argument("--cameras", default="1,2", help="camera counts to try")
    parser.add_argument("--size", type=int, default=84)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)

    rows = [
        "| encoder | cameras | runtime | median ms | p99 ms | speed vs eager | max action diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for encoder in args.encoders.split(","):
        for count in (int(c) for c in args.cameras.split(",")):
            config = ImagePolicyConfig(
                cameras=CAMERA_SETS[count], lowdim_keys=list(PROPRIO), encoder=encoder
            )
            module = DeployablePolicy(ImagePolicy(config, args.size, PROPRIO))
            inputs = example_inputs(module.policy, batch=1)
            print(f"{encoder}, {count} camera(s): exporting ...", flush=True)
            with tempfile.TemporaryDirectory() as folder:
                calls = runtimes(module, Path(folder), args.device)
                times = measure(calls, inputs, args.iters, args.warmup)
                reference = calls[next(iter(calls))](*inputs)[0]  # eager on the CPU
                diffs = {n: np.abs(c(*inputs)[0] - reference).max() for n, c in calls.items()}
            eager_median = np.median(times[next(iter(times))])
            for name, seconds in times.items():
                median, p99 = np.median(seconds) * 1e3, np.percentile(seconds, 99) * 1e3
                speed = eager_median / np.median(seconds)
                rows.append(
                    f"| {encoder} | {count} | {name} | {median:.2f} | {p99:.2f} | {speed:.2f}x "
                    f"| {diffs[name]:.1e} |"
                )
            print("\n".join(rows[-len(times) :]), flush=True)
    table = "\n".join(rows)
    header = (
        f"batch 1, {args.size}x{args.size} uint8 per camera + 9-d proprio, 1 CPU thread, "
        f"{args.iters} interleaved rounds, torch {torch.__version__}, device {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else "")
    )
    print(f"\n{header}\n\n{table}")
    if args.out:
        args.out.write_text(f"{header}\n\n{table}\n")


if __name__ == "__main__":
    main()
