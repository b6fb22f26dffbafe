"""Success against the expert labels a policy used: GAIL beside DAgger and BC (issue GAIL:
"put DAgger's labels-vs-success curve beside it").

Reads a CSV of measured rows (method, labels, successes, episodes, note; `#` lines are
comments) and draws one line per method with Wilson 95% intervals. GAIL adds no labels, so
its runs sit at the label count of the BC policy they started from.

    python scripts/plot_labels_vs_success.py assets/results/labels_vs_success.csv \
        --out assets/results/labels_vs_success.png
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import matplotlib

from vismanip.evaluation.metrics import wilson_interval

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rows", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--task", default="lift_perturbed")
    args = parser.parse_args()
    lines = [line for line in args.rows.read_text().splitlines() if not line.startswith("#")]
    by_method: dict[str, list[tuple[int, int, int, str]]] = defaultdict(list)
    for number, row in enumerate(csv.DictReader(lines), start=1):
        try:
            counts = int(row["labels"]), int(row["successes"]), int(row["episodes"])
        except (KeyError, TypeError, ValueError):
            raise SystemExit(
                f"error: {args.rows} row {number}: labels, successes and episodes must be "
                f"whole numbers, got {row}"
            ) from None
        by_method[row["method"]].append((*counts, row.get("note") or ""))
    figure, axes = plt.subplots(figsize=(7, 5.2))
    for offset, (method, points) in enumerate(by_method.items()):
        points.sort()
        one_count = len({p[0] for p in points}) == 1  # runs side by side, not a curve
        # a nudge so equal counts stay apart: per method, and per run where all share one
        labels = [p[0] + 40 * offset + (60 * k if one_count else 0) for k, p in enumerate(points)]
        rates = [100 * p[1] / p[2] for p in points]
        bounds = [wilson_interval(p[1], p[2]) for p in points]
        below = [rate - 100 * low for rate, (low, _) in zip(rates, bounds, strict=True)]
        above = [100 * high - rate for rate, (_, high) in zip(rates, bounds, strict=True)]
        axes.errorbar(
            labels,
            rates,
            yerr=[below, above],
            marker="o",
            capsize=3,
            linestyle="none" if one_count else "-",
            label=method,
        )
        if one_count:
            for k, (x, rate, point) in enumerate(zip(labels, rates, points, strict=True)):
                same_rate_before = rates[:k].count(rate)
                axes.annotate(  # beside its point; runs at one count and rate stacked
                    point[3].split(" (")[0].removeprefix("run "),
                    (x, rate),
                    xytext=(8, 9 * same_rate_before - 3),
                    textcoords="offset points",
                    fontsize=7,
                )
    axes.set_xlabel("expert labels used (demo steps + DAgger queries)")
    axes.set_ylabel(f"success on {args.task} (%)")
    axes.set_ylim(-2, 100)
    axes.grid(alpha=0.3)
    # below the axes: inside, it covered the runs' labels or DAgger's curve
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize=7)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
