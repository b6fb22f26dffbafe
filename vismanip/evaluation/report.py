"""What a person reads: markdown tables, plots and contact sheets of evaluations, DAgger
rounds and training curves. Run code computes numbers; this module only draws them."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vismanip.evaluation.html_report import write_html_report

if TYPE_CHECKING:
    from vismanip.evaluation.evaluate import Evaluation


def _pyplot():
    """matplotlib on its file-only backend (no display here or on CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    write_html_report(out_dir, title)


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
    write_html_report(out_dir, title)


def plot_success_bars(path: Path, title: str, summaries: dict[str, dict]) -> None:
    """Success rate per split with its 95% Wilson interval."""
    plt = _pyplot()

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
    plt = _pyplot()

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


def dagger_table(history: list[dict]) -> str:
    lines = [
        "| round | β | labels (round / total) | success (95% CI) | horizon-to-failure | rollout success | state KL |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for h in history:
        low, high = h["success_ci95"]
        beta = f"{h['beta']:.2f}" if "beta" in h else "–"
        rollout_success = f"{100 * h['rollout_success']:.0f}%" if "rollout_success" in h else "–"
        kl = f"{h['divergence_kl']:.2f}" if "divergence_kl" in h else "–"
        hfail = f"{h['horizon_to_failure']:.0f}" if h["horizon_to_failure"] is not None else "–"
        labels = (
            f"{h['labels_round']} / {h['labels_total']}"
            if h["labels_round"] is not None
            else f"demos / {h['labels_total']}"
        )
        lines.append(
            f"| {h['round']} | {beta} | {labels} | {100 * h['success_rate']:.0f}% "
            f"({100 * low:.0f}–{100 * high:.0f}%) | {hfail} | {rollout_success} | {kl} |"
        )
    return "\n".join(lines) + "\n"


def plot_dagger_rounds(history: list[dict], out: Path) -> None:
    """Success vs expert labels, and state divergence per round."""
    plt = _pyplot()

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    labels = [h["labels_total"] for h in history]
    success = [h["success_rate"] for h in history]
    low = [h["success_ci95"][0] for h in history]
    high = [h["success_ci95"][1] for h in history]
    left.fill_between(labels, low, high, alpha=0.2)
    left.plot(labels, success, "o-")
    left.set_xlabel("expert labels (total)")
    left.set_ylabel("success rate")
    left.set_ylim(-0.02, 1.02)
    rounds = [h["round"] for h in history if "divergence_kl" in h]
    right.plot(rounds, [h["divergence_kl"] for h in history if "divergence_kl" in h], "o-")
    right.set_xlabel("round")
    right.set_ylabel("KL(visited || expert), eef + object position")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def plot_learning_curve(metrics_csv: Path, out: Path) -> None:
    """Loss per epoch (train, valid) and rollout success, from Lightning's CSV log."""
    plt = _pyplot()

    if not metrics_csv.exists():
        return
    series: dict[str, dict[int, float]] = {}
    with metrics_csv.open() as file:
        for row in csv.DictReader(file):
            for key in ("train/loss_epoch", "val/loss", "rollout/success_rate"):
                if row.get(key):
                    series.setdefault(key, {})[int(row["epoch"]) + 1] = float(row[key])
    figure, loss_axis = plt.subplots(figsize=(7, 4))
    for key in ("train/loss_epoch", "val/loss"):
        if key in series:
            loss_axis.plot(list(series[key]), list(series[key].values()), label=key)
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("loss")
    loss_axis.set_yscale("log")
    if "rollout/success_rate" in series:
        success_axis = loss_axis.twinx()
        points = series["rollout/success_rate"]
        success_axis.plot(
            list(points), list(points.values()), "o-", color="tab:green", label="rollout success"
        )
        success_axis.set_ylim(-0.02, 1.02)
        success_axis.set_ylabel("rollout success rate")
        success_axis.legend(loc="upper right")
    loss_axis.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def exploring_table(by_object: dict[str, list[int]]) -> str:
    """GAIL's exploring episodes by target object (object scenes): which objects the replay
    holds successes of, the only ones D's reward can point the policy at. Empty without
    object scenes."""
    if not by_object:
        return ""
    lines = [
        "",
        "## Exploring episodes by target object",
        "",
        "| object | successes / episodes |",
        "|---|---:|",
    ]
    for name, (successes, episodes) in sorted(by_object.items()):
        lines.append(f"| {name} | {successes}/{episodes} ({successes / episodes:.0%}) |")
    return "\n".join(lines) + "\n"


def gail_table(history: list[dict], best_env_steps: int = -1) -> str:
    """One row per evaluation of a GAIL run: success vs env steps (and on each guard
    task), what D saw; the row best.ckpt holds is marked."""
    guard_tasks = list(history[0].get("guard_tasks", {})) if history else []
    lines = [
        "| env steps | wall time | success (95% CI) | "
        + "".join(f"{task} success (95% CI) | " for task in guard_tasks)
        + "episode length | D accuracy expert / policy | reward | exploration std |",
        "|---:|---:|---:|" + "---:|" * len(guard_tasks) + "---:|---:|---:|---:|",
    ]
    for h in history:
        guards = "".join(
            f"{_percent_ci(h['guard_tasks'][task])} | "
            if task in h.get("guard_tasks", {})
            else "– | "
            for task in guard_tasks
        )
        steps = (
            f"{h['env_steps']} (best.ckpt)" if h["env_steps"] == best_env_steps else h["env_steps"]
        )
        accuracy = (
            f"{100 * h['disc_accuracy_expert']:.0f}% / {100 * h['disc_accuracy_policy']:.0f}%"
            if "disc_accuracy_expert" in h
            else "–"
        )
        reward = f"{h['reward']:.2f}" if "reward" in h else "–"
        std = f"{h['exploration_std']:.3f}" if "exploration_std" in h else "–"
        lines.append(
            f"| {steps} | {h['wall_time_s'] / 60:.0f} min | {_percent_ci(h)} | {guards}"
            f"{h['episode_length']:.0f} | {accuracy} | {reward} | {std} |"
        )
    return "\n".join(lines) + "\n"


def _percent_ci(result: dict) -> str:
    low, high = result["success_ci95"]
    return f"{100 * result['success_rate']:.0f}% ({100 * low:.0f}–{100 * high:.0f}%)"


def plot_gail(history: list[dict], iterations: list[dict], out: Path) -> None:
    """Success vs env steps; discriminator accuracy; reward; critic and BC losses; std."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    steps = [h["env_steps"] for h in history]
    axes[0].fill_between(
        steps,
        [h["success_ci95"][0] for h in history],
        [h["success_ci95"][1] for h in history],
        alpha=0.2,
    )
    axes[0].plot(steps, [h["success_rate"] for h in history], "o-", label="evaluation")
    for task in history[0].get("guard_tasks", {}) if history else []:
        guarded = [(h["env_steps"], h["guard_tasks"][task]["success_rate"]) for h in history]
        axes[0].plot(*zip(*guarded, strict=True), "s--", label=f"evaluation on {task} (guard)")
    trained = [i for i in iterations if "env_steps" in i]
    axes[0].plot(
        [i["env_steps"] for i in trained],
        [i["rollout_success"] for i in trained],
        alpha=0.4,
        label="exploring rollouts",
    )
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("success rate")
    axes[0].legend(fontsize=8)
    panels = [
        (axes[1], ["disc_accuracy_expert", "disc_accuracy_policy"], "D accuracy"),
        (axes[2], ["reward", "critic_loss", "bc_loss", "anchor_loss"], "reward and losses"),
        (axes[3], ["exploration_std", "alpha"], "exploration"),
    ]
    for axis, keys, label in panels:
        for key in keys:
            points = [(i["env_steps"], i[key]) for i in trained if key in i]
            if points:
                axis.plot(*zip(*points, strict=True), label=key)
        axis.set_ylabel(label)
        if axis.lines:  # (before the learner's first update there is nothing to label)
            axis.legend(fontsize=8)
    for axis in axes:
        axis.set_xlabel("env steps")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
