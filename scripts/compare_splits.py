"""Compare several policies' split reports side by side: one markdown table, one bar plot.

    python scripts/compare_splits.py --out runs/s2r/compare \
        plain=runs/s2r/plain/shift/shift.json dr_aug=runs/s2r/dr_aug/shift/shift.json

Each input is the `<report>.json` that `vismanip eval --shift/--suite` writes. The table has
a row per policy: success (95% CI) per split, then the drop from the first split to the last
(or the drops named with `--drop seen,novel --drop seen,clutter_4`).

With `--curve XLABEL` the labels are numbers (demos, epochs) and the plot is a line per
split, success against that number (issue "sim-to-real": success vs randomized demos):

    python scripts/compare_splits.py --out runs/s2r/demos_curve --curve "randomized demos" \
        200=runs/s2r/dr200_chunk/shift/shift.json 1000=runs/s2r/dr1000_chunk/shift/shift.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(reports: list[str]) -> dict[str, dict[str, dict]]:
    """policy label -> split -> summary."""
    policies = {}
    for item in reports:
        label, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"error: {item!r} is not LABEL=path/to/report.json")
        policies[label] = json.loads(Path(path).read_text())["splits"]
    return policies


def table(policies: dict[str, dict[str, dict]], drops: list[tuple[str, str]]) -> str:
    splits = list(next(iter(policies.values())))
    header = "| policy | " + " | ".join(splits) + " | "
    header += " | ".join(f"drop {start} → {end}" for start, end in drops) + " |"
    lines = [header, "|---|" + "---:|" * (len(splits) + len(drops))]
    for label, summaries in policies.items():
        cells = []
        for split in splits:
            s = summaries[split]
            low, high = s["success_ci95"]
            cells.append(f"{100 * s['success_rate']:.0f}% ({100 * low:.0f}–{100 * high:.0f})")
        for start, end in drops:
            drop = summaries[start]["success_rate"] - summaries[end]["success_rate"]
            cells.append(f"{100 * drop:+.0f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(policies: dict[str, dict[str, dict]], path: Path, title: str) -> None:
    splits = list(next(iter(policies.values())))
    width = 0.8 / len(policies)
    legend_rows = -(-len(policies) // 6)  # six labels per legend row, under the axes
    figure, axes = plt.subplots(figsize=(1.6 * len(splits) + 2, 3.4 + 0.25 * legend_rows))
    # tab20 keeps a distinct colour per policy past the default cycle's 10.
    colours = plt.get_cmap("tab10" if len(policies) <= 10 else "tab20").colors
    for index, (label, summaries) in enumerate(policies.items()):
        rates = np.array([summaries[s]["success_rate"] for s in splits]) * 100
        ci = np.array([summaries[s]["success_ci95"] for s in splits]).T * 100
        x = np.arange(len(splits)) + (index - (len(policies) - 1) / 2) * width
        axes.bar(
            x,
            rates,
            width,
            yerr=[rates - ci[0], ci[1] - rates],
            capsize=2,
            label=label,
            color=colours[index % len(colours)],
        )
    axes.set_xticks(np.arange(len(splits)), splits)
    axes.set_ylim(0, 105)
    axes.set_ylabel("success (%)")
    axes.set_title(title, fontsize=9)
    axes.legend(
        fontsize=8,
        ncols=min(len(policies), 6),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        frameon=False,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def plot_curve(policies: dict[str, dict[str, dict]], path: Path, title: str, xlabel: str) -> None:
    """One line per split: success (with its 95% CI as a band) against the numeric labels."""
    try:
        xs = np.array([float(label) for label in policies])
    except ValueError:
        raise SystemExit(f"error: --curve needs numeric labels, not {list(policies)}") from None
    order = np.argsort(xs)
    reports = list(policies.values())
    splits = list(reports[0])
    summaries = [reports[i] for i in order]
    figure, axes = plt.subplots(figsize=(6, 3.8))
    for split in splits:
        rates = np.array([s[split]["success_rate"] for s in summaries]) * 100
        ci = np.array([s[split]["success_ci95"] for s in summaries]).T * 100
        (line,) = axes.plot(xs[order], rates, marker="o", label=split)
        axes.fill_between(xs[order], ci[0], ci[1], color=line.get_color(), alpha=0.12)
    if (xs > 0).all():  # demo counts span decades; a 0 (the starting policy) needs a linear axis
        axes.set_xscale("log")
    axes.set_xticks(xs[order], [f"{x:g}" for x in xs[order]])
    axes.minorticks_off()
    axes.set_ylim(0, 105)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("success (%)")
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "reports", nargs="+", help="LABEL=path/to/shift.json (or generalization.json)"
    )
    parser.add_argument("--out", required=True, help="Folder for compare.md and compare.png")
    parser.add_argument("--title", default="success per split (95% CI)")
    parser.add_argument(
        "--curve", metavar="XLABEL", help="numeric labels: plot success against them per split"
    )
    parser.add_argument(
        "--drop",
        action="append",
        metavar="FROM,TO",
        help="a drop column, success on FROM minus success on TO (default: first,last split)",
    )
    args = parser.parse_args()
    policies = load(args.reports)
    splits = list(next(iter(policies.values())))
    drops = [tuple(item.split(",")) for item in args.drop or [f"{splits[0]},{splits[-1]}"]]
    for drop in drops:
        unknown = [name for name in drop if name not in splits]
        if len(drop) != 2 or unknown:
            raise SystemExit(f"error: --drop {','.join(drop)}: want FROM,TO among {splits}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = table(policies, drops)
    (out / "compare.md").write_text(markdown)
    if args.curve:
        plot_curve(policies, out / "compare.png", args.title, args.curve)
    else:
        plot(policies, out / "compare.png", args.title)
    print(markdown, end="")
    print(f"plot: {out / 'compare.png'}")


if __name__ == "__main__":
    main()
