"""`vismanip export`: checkpoint -> parity-checked artifact for a robot.

The artifact is first written under a temporary name, loaded back and compared with the
eager module on recorded dataset observations; only if it matches is it moved to `out`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vismanip.data.datamodule import DemoDataset
from vismanip.data.hdf5 import demo_names, open_dataset
from vismanip.errors import VismanipError
from vismanip.export.deployable import DeployablePolicy, build_metadata, example_inputs
from vismanip.export.formats import PARITY_TOLERANCE, write_artifact
from vismanip.policies import ImagePolicy
from vismanip.policies.artifact import FORMATS, ExportedArtifact, format_of
from vismanip.policies.checkpoint import load_policy


@dataclass
class ExportReport:
    path: Path
    format: str
    samples: int
    max_abs_diff: float
    tolerance: float
    data: Path


def recorded_inputs(policy: ImagePolicy, data: Path, samples: int) -> tuple[torch.Tensor, ...]:
    """`samples` observations spread evenly over every demo of `data`, as artifact inputs."""
    with open_dataset(data) as file:
        demos = demo_names(file)
    dataset = DemoDataset(data, demos, policy.image_keys + policy.lowdim_keys, cache_bytes=0)
    if len(dataset) < samples:
        raise VismanipError(f"{data}: {len(dataset)} observations, parity needs {samples}")
    rows = np.linspace(0, len(dataset) - 1, samples).round().astype(int).tolist()
    return artifact_inputs(policy, dataset.__getitems__(rows)["obs"])


def artifact_inputs(policy: ImagePolicy, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """A batch of observations by key -> the artifact's inputs: camera images, then the
    proprio keys concatenated (when the policy reads any)."""
    images = [obs[key] for key in policy.image_keys]
    if not policy.lowdim_keys:
        return tuple(images)
    proprio = torch.cat([obs[key].float() for key in policy.lowdim_keys], dim=-1)
    return (*images, proprio)


def recorded_episodes(
    policy: ImagePolicy, data: Path, samples: int, episodes: int = 2
) -> list[list[tuple[torch.Tensor, ...]]]:
    """For a stateful policy: `samples` observations as consecutive steps (batch 1) from the
    start of the first `episodes` demos, so parity covers the state and its reset."""
    with open_dataset(data) as file:
        demos = demo_names(file)[:episodes]
    keys = policy.image_keys + policy.lowdim_keys
    dataset = DemoDataset(data, demos, keys, cache_bytes=0)
    steps = max(1, samples // len(demos))
    sequences = []
    for demo, length in enumerate(dataset.lengths):
        start = int(sum(dataset.lengths[:demo]))
        obs = dataset.__getitems__(list(range(start, start + min(steps, length))))["obs"]
        inputs = artifact_inputs(policy, obs)
        sequences.append([tuple(x[t : t + 1] for x in inputs) for t in range(len(inputs[0]))])
    return sequences


def sequence_difference(
    eager: DeployablePolicy,
    artifact: ExportedArtifact,
    episodes: list[list[tuple[torch.Tensor, ...]]],
) -> float:
    """Largest |artifact - eager| action stepping both through whole episodes, each after
    reset() (the state is part of what must match). Inf if a fallback flag disagrees."""
    worst = 0.0
    for steps in episodes:
        eager.reset()
        artifact.reset()
        for inputs in steps:
            with torch.no_grad():
                expected, expected_flag = (t.numpy() for t in eager(*inputs))
            action, flag = artifact(*inputs)
            if not np.array_equal(flag, expected_flag):
                return float("inf")
            worst = max(worst, float(np.abs(action - expected).max()))
    return worst


def max_difference(
    eager: DeployablePolicy, artifact: ExportedArtifact, inputs: tuple[torch.Tensor, ...]
) -> float:
    """Largest |artifact - eager| action over the whole batch and over single samples
    (robots call with batch 1; the artifact was traced with batch 2). Inf if the
    fallback flags disagree."""
    with torch.no_grad():
        expected, expected_flags = (t.numpy() for t in eager(*inputs))
    action, flags = artifact(*inputs)
    worst = float(np.abs(action - expected).max())
    for i in range(min(5, len(expected))):
        one, one_flag = artifact(*(x[i : i + 1] for x in inputs))
        worst = max(worst, float(np.abs(one[0] - expected[i]).max()))
        flags_match = bool(one_flag[0]) == bool(expected_flags[i])
        if not flags_match:
            return float("inf")
    if not np.array_equal(flags, expected_flags):
        return float("inf")
    return worst


def export_policy(
    checkpoint: str | Path,
    out: str | Path,
    fmt: str | None = None,
    data: str | Path | None = None,
    samples: int = 100,
) -> ExportReport:
    """Export `checkpoint` to `out`; refuses (writes nothing) if parity fails."""
    out = Path(out)
    fmt = fmt or format_of(out)
    if fmt not in FORMATS:
        raise VismanipError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    if out.suffix != FORMATS[fmt]:
        raise VismanipError(f"{out}: a {fmt} artifact must end in {FORMATS[fmt]}")
    loaded = load_policy(checkpoint)
    weights, train_config = loaded.weights, loaded.train_config
    data_path = Path(data or (train_config or {}).get("data") or "")
    if not data_path.is_file():
        raise VismanipError(
            f"parity check needs recorded observations: {data_path or 'no dataset'} not found; "
            "pass --data PATH (an HDF5 with the policy's obs keys)"
        )
    policy = weights.build()
    module = DeployablePolicy(policy)
    metadata = build_metadata(policy, loaded.env_config, train_config, fmt)
    if policy.stateful:
        episodes = recorded_episodes(policy, data_path, samples)
        samples = sum(len(steps) for steps in episodes)
    else:
        inputs = recorded_inputs(policy, data_path, samples)

    unverified = out.with_name(f"{out.stem}.unverified{out.suffix}")
    try:
        write_artifact(module, example_inputs(policy), unverified, fmt, metadata)
        artifact = ExportedArtifact(unverified)
        difference = (
            sequence_difference(module, artifact, episodes)
            if policy.stateful
            else max_difference(module, artifact, inputs)
        )
        if not difference <= PARITY_TOLERANCE[fmt]:
            raise VismanipError(
                f"{fmt} artifact differs from the eager policy by {difference:.2e} "
                f"(> {PARITY_TOLERANCE[fmt]:.0e}) on {samples} recorded observations; not written"
            )
        os.replace(unverified, out)
    finally:
        unverified.unlink(missing_ok=True)
    return ExportReport(out, fmt, samples, difference, PARITY_TOLERANCE[fmt], data_path)
