"""scripts/compare_splits.py: one table and one plot from several policies' split reports."""

import json
import subprocess
import sys


def _report(path, rates):
    splits = {
        name: {"success_rate": rate, "success_ci95": [max(0, rate - 0.1), min(1, rate + 0.1)]}
        for name, rate in rates.items()
    }
    path.write_text(json.dumps({"title": "t", "splits": splits}))
    return path


def test_table_rows_per_policy_with_the_drop(tmp_path):
    plain = _report(tmp_path / "a.json", {"none": 0.9, "all": 0.2})
    robust = _report(tmp_path / "b.json", {"none": 0.8, "all": 0.76})
    result = subprocess.run(
        [
            sys.executable,
            "scripts/compare_splits.py",
            f"plain={plain}",
            f"dr_aug={robust}",
            "--out",
            str(tmp_path / "cmp"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert table.splitlines()[0] == "| policy | none | all | drop none → all |"
    assert "| plain | 90% (80–100) | 20% (10–30) | +70 |" in table
    assert "| dr_aug | 80% (70–90) | 76% (66–86) | +4 |" in table
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 5000
    assert table in result.stdout


def test_named_drops_and_unknown_split(tmp_path):
    report = _report(tmp_path / "a.json", {"seen": 0.5, "novel": 0.4, "clutter_4": 0.1})
    command = [sys.executable, "scripts/compare_splits.py", f"p={report}", "--out", str(tmp_path)]
    subprocess.run(command + ["--drop", "seen,novel", "--drop", "seen,clutter_4"], check=True)
    table = (tmp_path / "compare.md").read_text()
    assert table.splitlines()[0].endswith("| drop seen → novel | drop seen → clutter_4 |")
    assert table.splitlines()[2].endswith("| +10 | +40 |")
    bad = subprocess.run(command + ["--drop", "seen,nvel"], capture_output=True, text=True)
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == [
        "error: --drop seen,nvel: want FROM,TO among ['seen', 'novel', 'clutter_4']"
    ]


def test_curve_orders_numeric_labels_and_refuses_others(tmp_path):
    small = _report(tmp_path / "a.json", {"none": 0.3, "all": 0.3})
    large = _report(tmp_path / "b.json", {"none": 0.9, "all": 0.8})
    command = [sys.executable, "scripts/compare_splits.py", "--out", str(tmp_path / "c")]
    subprocess.run(command + ["--curve", "demos", f"1000={large}", f"200={small}"], check=True)
    assert (tmp_path / "c" / "compare.png").stat().st_size > 5000
    assert (
        "| 1000 | 90% (80–100) | 80% (70–90) | +10 |" in (tmp_path / "c" / "compare.md").read_text()
    )
    bad = subprocess.run(
        command + ["--curve", "demos", f"dr={small}"], capture_output=True, text=True
    )
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == ["error: --curve needs numeric labels, not ['dr']"]
