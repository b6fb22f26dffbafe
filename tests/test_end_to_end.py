"""The main job at tiny size, as a user runs it: collect (domain-randomized) -> train -> eval
(also on the visual-shift splits) -> export, via the CLI."""

import json
import subprocess
import sys

import pytest
from conftest import PROGRESS_BAR, open_in_chromium
from conftest import run_cli as run_cli_anywhere

pytestmark = pytest.mark.sim


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The command as `make demo` runs it, whose output a person must be able to read:
    no warnings, no third-party tips."""
    result = run_cli_anywhere(*args)
    for line in (result.stdout + result.stderr).replace("\r", "\n").splitlines():
        assert "warning" not in line.lower() and "Tip:" not in line, (args[0], line)
    return result


def test_collect_train_eval_export(tmp_path):
    data = tmp_path / "lift.hdf5"
    run = tmp_path / "run"
    run_cli(
        "collect",
        "--task",
        "lift",
        "--episodes",
        "4",
        "--workers",
        "1",
        "--size",
        "32",
        "randomization=configs/randomization/default.yaml",
        "--out",
        str(data),
    )
    run_cli(
        "train",
        f"data={data}",
        f"output_dir={run}",
        "trainer.max_epochs=2",
        "loader.batch_size=16",
        "rollout.every_n_epochs=1",
        "rollout.episodes=1",
    )
    for name in (
        "best.ckpt",
        "last.ckpt",
        "config.yaml",
        "run.json",
        "learning_curve.png",
        "logs/metrics.csv",
    ):
        assert (run / name).exists(), name
    assert "rollout/success_rate" in (run / "logs" / "metrics.csv").read_text()

    result = run_cli(
        "eval", str(run / "best.ckpt"), "--episodes", "2", "--workers", "2", "--videos", "1"
    )
    report = run / "eval_lift"
    last_line = result.stdout.strip().splitlines()[-1]
    assert "success" in last_line and last_line.endswith(f"report in {report}/report.html")
    images = open_in_chromium(report / "report.html", tmp_path / "report.png")
    assert "videos/episode_000.gif" in [src for src, _ in images]
    assert images and all(width > 0 for _, width in images), images
    evaluation = json.loads((report / "eval.json").read_text())
    assert evaluation["summary"]["episodes"] == 2 and len(evaluation["episodes"]) == 2
    assert 0.0 <= evaluation["summary"]["success_rate"] <= 1.0
    assert (report / "eval.md").read_text().startswith("| run |")
    assert (report / "videos" / "episode_000.gif").stat().st_size > 1000

    result = run_cli(
        "eval", str(run / "best.ckpt"), "--episodes", "2", "--workers", "2",
        "--shift", "none,all", "--json",
    )  # fmt: skip
    shifted = run / "eval_lift_shift"
    summary = json.loads(result.stdout)  # --json: one JSON object and nothing else
    assert summary["report"] == f"{shifted}/report.html" and set(summary["splits"]) == {
        "none",
        "all",
    }
    assert not PROGRESS_BAR.search(result.stderr)  # --json draws no bars
    table = (shifted / "shift.md").read_text()
    assert "| none | 2 |" in table and "| all | 2 |" in table
    for picture in ("shift.png", "contact_sheet.png"):
        assert (shifted / picture).stat().st_size > 5000, picture
    splits = json.loads((shifted / "shift.json").read_text())["splits"]
    assert set(splits) == {"none", "all"}
    assert (shifted / "all" / "eval.json").exists()

    run_cli("eval", str(run / "best.ckpt"), "--episodes", "1", "--suite", "generalization")
    suite = run / "eval_lift_generalization"
    table = (suite / "generalization.md").read_text()
    for split in (
        "seen",
        "novel",
        "clutter_2",
        "clutter_4",
        "unseen-textures",
        "lighting",
        "camera",
    ):
        assert f"| {split} | 1 |" in table, split
    assert (suite / "contact_sheet.png").exists() and (suite / "generalization.png").exists()
    # Novel draws an object per episode; the report says which one and how it went.
    novel = json.loads((suite / "novel" / "eval.json").read_text())
    drawn = novel["episodes"][0]["target_object"]
    assert drawn in novel["summary"]["by_object"]
    assert "## Success by object" in table and f"| {drawn} | " in table

    # Export, then evaluate the artifact itself on the same seeded episodes.
    artifact = tmp_path / "lift_policy.pt"
    run_cli("export", str(run / "best.ckpt"), "--format", "torchscript", "--out", str(artifact))
    run_cli(
        "eval", str(artifact), "--episodes", "2", "--workers", "2", "--out", str(tmp_path / "ev")
    )
    exported = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert [e["seed"] for e in exported["episodes"]] == [e["seed"] for e in evaluation["episodes"]]
    assert [e["success"] for e in exported["episodes"]] == [
        e["success"] for e in evaluation["episodes"]
    ]


def test_eval_rejects_what_is_not_a_checkpoint(tmp_path):
    junk = tmp_path / "x.ckpt"
    junk.write_text("no")
    result = subprocess.run(
        [sys.executable, "-m", "vismanip.cli", "eval", str(junk), "--episodes", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"error: {junk}: not a readable checkpoint")
