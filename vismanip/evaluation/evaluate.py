"""Evaluate a policy by rollouts in the simulator: parallel workers, metrics, videos, report."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vismanip.envs.tasks import EnvConfig, VisionEnv, task_spec
from vismanip.errors import VismanipError
from vismanip.evaluation.metrics import EpisodeResult, summarize
from vismanip.evaluation.rollout import EVAL_STREAM, episode_seed, rollout
from vismanip.evaluation.workers import worker_pool
from vismanip.policies import ImagePolicy

PolicyBlob = tuple[dict, dict]  # (ImagePolicy.describe(), state_dict): picklable
# Builds the policy inside each worker; must pickle (a functools.partial of a module
# function), e.g. partial(policy_from_blob, blob) or partial(ExportedPolicyActor, path).
PolicyLoader = Callable[[], Any]


def policy_blob(policy: ImagePolicy) -> PolicyBlob:
    return policy.describe(), {k: v.detach().cpu() for k, v in policy.state_dict().items()}


def policy_from_blob(blob: PolicyBlob) -> ImagePolicy:
    description, state = blob
    policy = ImagePolicy.from_description(description)
    load_policy_state(policy, state)
    return policy.eval()


def load_policy_state(policy: ImagePolicy, state: dict) -> None:
    """Load weights and buffers; checkpoints from before the action range was stored keep
    the [-1, 1] default."""
    missing, unexpected = policy.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"action_low", "action_high"}:
        policy.load_state_dict(state)  # strict: raises with the full list of mismatches


def load_checkpoint(path: str | Path) -> tuple[PolicyBlob, dict]:
    """(policy, what vismanip stored with it: env_config, train_config) from a .ckpt."""
    path = Path(path)
    if not path.is_file():
        raise VismanipError(f"{path}: no such checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for a bad file
        raise VismanipError(f"{path}: not a readable checkpoint ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict) or "vismanip" not in checkpoint:
        raise VismanipError(f"{path}: not a vismanip training checkpoint")
    meta = checkpoint["vismanip"]
    prefix = "policy."
    state = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    return (meta["policy"], state), meta


_worker: tuple[Any, VisionEnv] | None = None


def _init_worker(load_policy: PolicyLoader, env_config: EnvConfig) -> None:
    global _worker
    _worker = (load_policy(), VisionEnv(env_config))


def _close_worker() -> None:
    global _worker
    if _worker is not None:
        _worker[1].close()
        _worker = None


def _run_episode(
    index: int, seed: int, record: bool
) -> tuple[int, EpisodeResult, np.ndarray | None]:
    assert _worker is not None
    policy, env = _worker
    policy.reset()
    episode = rollout(env, policy.select_action, seed, record=record)
    result = EpisodeResult(
        seed=seed,
        success=episode.success,
        length=len(episode),
        episode_return=float(np.sum(episode.rewards)),
        failed_at=episode.failed_at,
    )
    frames = None
    if record:  # cameras side by side, one row per step
        stacked = episode.stacked_obs()
        frames = np.concatenate([stacked[key] for key in policy.image_keys], axis=2)
    return index, result, frames


def run_evaluation(
    load_policy: PolicyLoader,
    env_config: EnvConfig,
    episodes: int,
    workers: int = 1,
    seed: int = 0,
    videos: int = 0,
    show_progress: bool = False,
) -> tuple[dict, list[EpisodeResult], list[np.ndarray]]:
    """Roll the policy out on `episodes` seeded episodes; (summary, per-episode, videos)."""
    if episodes < 1:
        raise VismanipError(f"episodes must be at least 1, not {episodes}")
    results: list[EpisodeResult | None] = [None] * episodes
    clips: dict[int, np.ndarray] = {}
    with worker_pool(
        min(workers, episodes),
        _init_worker,
        (load_policy, env_config),
        _close_worker,
        env_config.render.backend,
    ) as pool:
        futures = [
            pool.submit(_run_episode, i, episode_seed(seed, i, EVAL_STREAM), i < videos)
            for i in range(episodes)
        ]
        for future in tqdm(
            as_completed(futures), total=episodes, desc="eval", unit="ep", disable=not show_progress
        ):
            index, result, frames = future.result()
            results[index] = result
            if frames is not None:
                clips[index] = frames
    done = [r for r in results if r is not None]
    horizon = env_config.horizon or task_spec(env_config.task).horizon
    return summarize(done, horizon), done, [clips[i] for i in sorted(clips)]


def write_report(
    out_dir: Path,
    title: str,
    summary: dict,
    results: list[EpisodeResult],
    clips: list[np.ndarray],
    control_freq: int,
) -> None:
    """eval.json (summary + every episode), eval.md (table) and videos/episode_NNN.gif."""
    import imageio.v3 as iio

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval.json").write_text(
        json.dumps(
            {"title": title, "summary": summary, "episodes": [asdict(r) for r in results]}, indent=2
        )
    )
    (out_dir / "eval.md").write_text(markdown_table({title: summary}))
    for index, frames in enumerate(clips):
        (out_dir / "videos").mkdir(exist_ok=True)
        iio.imwrite(
            out_dir / "videos" / f"episode_{index:03d}.gif",
            frames,
            duration=1000 / control_freq,
            loop=0,
        )


def markdown_table(rows: dict[str, dict]) -> str:
    lines = [
        "| run | episodes | success | 95% CI | horizon-to-failure | episode length | return |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in rows.items():
        low, high = s["success_ci95"]
        htf = "—" if s["horizon_to_failure"] is None else f"{s['horizon_to_failure']:.0f}"
        lines.append(
            f"| {name} | {s['episodes']} | {100 * s['success_rate']:.0f}% | {100 * low:.0f}–{100 * high:.0f}% "
            f"| {htf} | {s['episode_length']:.0f} | {s['return']:.2f} |"
        )
    return "\n".join(lines) + "\n"
