"""Evaluate a policy by rollouts in the simulator: parallel workers, metrics, videos, report."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vismanip.envs.tasks import EnvConfig, VisionEnv, task_spec
from vismanip.errors import VismanipError
from vismanip.evaluation.metrics import (
    EpisodeResult,
    state_coverage,
    success_by_object,
    summarize,
    visited_cells,
)
from vismanip.evaluation.rollout import EVAL_STREAM, episode_seed, rollout
from vismanip.evaluation.workers import as_finished, worker_pool
from vismanip.policies import ImagePolicy
from vismanip.sim2real.randomization import RandomizationConfig

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


def _init_worker(
    load_policy: PolicyLoader,
    env_config: EnvConfig,
    randomization: RandomizationConfig | None = None,
) -> None:
    global _worker
    _worker = (load_policy(), VisionEnv(env_config, randomization))


def _close_worker() -> None:
    global _worker
    if _worker is not None:
        _worker[1].close()
        _worker = None


def _run_episode(
    index: int, seed: int, record: bool
) -> tuple[int, EpisodeResult, np.ndarray | None, np.ndarray, np.ndarray]:
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
        target_object=env.target_object,
    )
    frames = None
    if record:  # cameras side by side, one row per step
        stacked = episode.stacked_obs()
        frames = np.concatenate([stacked[key] for key in policy.image_keys], axis=2)
    first_frame = np.concatenate([episode.first_obs[key] for key in policy.image_keys], axis=1)
    return index, result, frames, first_frame, visited_cells(np.stack(episode.eef_positions))


@dataclass
class Evaluation:
    """What `run_evaluation` measured: summary, every episode, videos, first frames."""

    summary: dict
    episodes: list[EpisodeResult]
    videos: list[np.ndarray]  # the first `videos` episodes, (T, H, W * cameras, 3)
    first_frames: list[np.ndarray]  # every episode's first frame, cameras side by side


def run_evaluation(
    load_policy: PolicyLoader,
    env_config: EnvConfig,
    episodes: int,
    workers: int = 1,
    seed: int = 0,
    videos: int = 0,
    show_progress: bool = False,
    randomization: RandomizationConfig | None = None,
    desc: str = "eval",
) -> Evaluation:
    """Roll the policy out on `episodes` seeded episodes.

    `randomization` changes each episode's scene (the visual-shift splits); the same seed
    gives the same initial state with or without it, so splits differ only in looks.
    """
    if episodes < 1:
        raise VismanipError(f"episodes must be at least 1, not {episodes}")
    results: list[EpisodeResult | None] = [None] * episodes
    clips: dict[int, np.ndarray] = {}
    first_frames: list[np.ndarray | None] = [None] * episodes
    cells: list[np.ndarray] = []
    with worker_pool(
        min(workers, episodes),
        _init_worker,
        (load_policy, env_config, randomization),
        _close_worker,
        env_config.render.backend,
    ) as pool:
        calls = (
            (_run_episode, i, episode_seed(seed, i, EVAL_STREAM), i < videos)
            for i in range(episodes)
        )
        for index, result, frames, first_frame, visited in tqdm(
            as_finished(pool, calls, 2 * workers),
            total=episodes,
            desc=desc,
            unit="ep",
            disable=not show_progress,
        ):
            results[index], first_frames[index] = result, first_frame
            cells.append(visited)
            if frames is not None:
                clips[index] = frames
    done = [r for r in results if r is not None]
    horizon = env_config.horizon or task_spec(env_config.task).horizon
    summary = summarize(done, horizon)
    summary["state_coverage"] = state_coverage(cells)
    by_object = success_by_object(done)
    if by_object:
        summary["by_object"] = by_object
    return Evaluation(
        summary,
        done,
        [clips[i] for i in sorted(clips)],
        [frame for frame in first_frames if frame is not None],
    )


def write_report(out_dir: Path, title: str, evaluation: Evaluation, control_freq: int) -> None:
    """eval.json (summary + every episode), eval.md (table) and videos/episode_NNN.gif."""
    import imageio.v3 as iio

    out_dir.mkdir(parents=True, exist_ok=True)
    episodes = [asdict(r) for r in evaluation.episodes]
    (out_dir / "eval.json").write_text(
        json.dumps({"title": title, "summary": evaluation.summary, "episodes": episodes}, indent=2)
    )
    (out_dir / "eval.md").write_text(
        markdown_table({title: evaluation.summary}) + object_table({title: evaluation.summary})
    )
    for index, frames in enumerate(evaluation.videos):
        (out_dir / "videos").mkdir(exist_ok=True)
        iio.imwrite(
            out_dir / "videos" / f"episode_{index:03d}.gif",
            frames,
            duration=1000 / control_freq,
            loop=0,
        )


def markdown_table(rows: dict[str, dict]) -> str:
    lines = [
        "| run | episodes | success | 95% CI | horizon-to-failure | episode length | return "
        "| state coverage |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in rows.items():
        low, high = s["success_ci95"]
        htf = "—" if s["horizon_to_failure"] is None else f"{s['horizon_to_failure']:.0f}"
        lines.append(
            f"| {name} | {s['episodes']} | {100 * s['success_rate']:.0f}% | {100 * low:.0f}–{100 * high:.0f}% "
            f"| {htf} | {s['episode_length']:.0f} | {s['return']:.2f} | {s.get('state_coverage', '—')} |"
        )
    return "\n".join(lines) + "\n"


def object_table(rows: dict[str, dict]) -> str:
    """Success per target object (rows) and run (columns), as "successes/episodes", so a
    reader sees which objects break the policy; empty when no run drew objects."""
    runs = {name: s["by_object"] for name, s in rows.items() if s.get("by_object")}
    if not runs:
        return ""
    objects = sorted({name for by_object in runs.values() for name in by_object})
    lines = [
        "\n## Success by object\n",
        "| object | " + " | ".join(runs) + " |",
        "|---|" + "---:|" * len(runs),
    ]
    for name in objects:
        cells = []
        for by_object in runs.values():
            entry = by_object.get(name)
            cells.append(
                "—"
                if entry is None
                else f"{entry['successes']}/{entry['episodes']} "
                f"({100 * entry['successes'] / entry['episodes']:.0f}%)"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_split_report(
    out_dir: Path,
    title: str,
    evaluations: dict[str, Evaluation],
    control_freq: int,
    report: str,
    notes: str = "",
) -> None:
    """One folder per split (eval.json/md, videos), plus over all splits: <report>.md
    (table), <report>.json, <report>.png (success with 95% CI per split) and
    contact_sheet.png (first frames per split)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, evaluation in evaluations.items():
        write_report(out_dir / name, f"{title}, {name}", evaluation, control_freq)
    summaries = {name: evaluation.summary for name, evaluation in evaluations.items()}
    (out_dir / f"{report}.json").write_text(
        json.dumps({"title": title, "splits": summaries}, indent=2)
    )
    (out_dir / f"{report}.md").write_text(
        f"# {title}\n\n{notes}" + markdown_table(summaries) + object_table(summaries)
    )
    plot_success_bars(out_dir / f"{report}.png", title, summaries)
    write_contact_sheet(
        out_dir / "contact_sheet.png",
        {name: evaluation.first_frames for name, evaluation in evaluations.items()},
    )


def plot_success_bars(path: Path, title: str, summaries: dict[str, dict]) -> None:
    """Success rate per split with its 95% Wilson interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summaries)
    rates = np.array([summaries[name]["success_rate"] for name in names]) * 100
    intervals = np.array([summaries[name]["success_ci95"] for name in names]).T * 100
    figure, axes = plt.subplots(figsize=(1.4 * len(names) + 2, 3.2))
    axes.bar(names, rates, yerr=[rates - intervals[0], intervals[1] - rates], capsize=4)
    axes.set_ylim(0, 105)
    axes.set_ylabel("success (%)")
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_contact_sheet(path: Path, frames: dict[str, list[np.ndarray]], columns: int = 6) -> None:
    """A grid of first frames, one labelled row per split, so a person sees what was tested."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(frames)
    height, width = next(iter(frames.values()))[0].shape[:2]
    scale = 1.6 / height
    figure, axes = plt.subplots(
        len(rows),
        columns,
        figsize=(columns * width * scale, len(rows) * height * scale + 0.3),
        squeeze=False,
    )
    for row, name in enumerate(rows):
        for column in range(columns):
            axis = axes[row][column]
            axis.set_xticks([])
            axis.set_yticks([])
            if column < len(frames[name]):
                axis.imshow(frames[name][column])
        axes[row][0].set_ylabel(name, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
