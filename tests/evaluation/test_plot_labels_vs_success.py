"""scripts/plot_labels_vs_success.py: GAIL beside DAgger's labels-vs-success curve."""

import subprocess
import sys


def test_the_readmes_rows_plot_and_a_bad_row_is_refused(tmp_path):
    out = tmp_path / "curve.png"
    subprocess.run(
        [sys.executable, "scripts/plot_labels_vs_success.py",
         "assets/results/labels_vs_success.csv", "--out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert out.stat().st_size > 10_000
    bad = tmp_path / "bad.csv"
    bad.write_text("method,labels,successes,episodes,note\nGAIL,2532,five,50,x\n")
    result = subprocess.run(
        [sys.executable, "scripts/plot_labels_vs_success.py", str(bad), "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: {bad} row 1: labels, successes and episodes must be whole numbers, got "
        "{'method': 'GAIL', 'labels': '2532', 'successes': 'five', 'episodes': '50', 'note': 'x'}"
    ]
