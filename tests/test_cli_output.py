"""Every command ends with a summary: `--quiet` prints only it, `--json` prints it as JSON."""

import json

import h5py
import pytest
from conftest import run_in_process

from vismanip.progress import QUIET_VARIABLE


@pytest.fixture(autouse=True)
def _restore_progress_switch(monkeypatch):
    """The commands run in this process and set the switch; later tests get it back."""
    monkeypatch.setenv(QUIET_VARIABLE, "0")


def test_validate_json_reports_valid_and_problems(tiny_dataset, tmp_path):
    path, _ = tiny_dataset
    status, out, _ = run_in_process("data", "validate", str(path), "--json")
    assert status == 0 and json.loads(out) == {"path": str(path), "valid": True, "problems": []}

    with h5py.File(path, "a") as file:
        del file["data/demo_1/actions"]
    status, out, err = run_in_process("data", "validate", str(path), "--json")
    summary = json.loads(out)
    assert status == 1 and summary["valid"] is False and "actions" in summary["problems"][0]
    assert err == ""  # --json: the problems are in the JSON, not also on stderr


def test_info_json_is_the_same_summary_the_text_shows(tiny_dataset):
    path, _ = tiny_dataset
    _, text, _ = run_in_process("data", "info", str(path))
    _, out, _ = run_in_process("data", "info", str(path), "--json")
    summary = json.loads(out)
    assert summary["demos"] == 3 and f"demos      {summary['demos']}" in text


def test_train_quiet_prints_only_its_summary_line_and_json_its_summary(tiny_dataset, tmp_path):
    path, _ = tiny_dataset
    settings = [
        f"data={path}",
        "trainer.max_epochs=2",
        "loader.batch_size=4",
        "rollout.every_n_epochs=0",
        "policy.lowdim_keys=[robot0_eef_pos]",
    ]
    status, out, err = run_in_process("train", "--quiet", *settings, f"output_dir={tmp_path}/q")
    assert status == 0 and out == f"best checkpoint: {tmp_path}/q/best.ckpt\n"
    assert err == "", err  # no bar, no Lightning info line

    status, out, err = run_in_process("train", "--json", *settings, f"output_dir={tmp_path}/j")
    summary = json.loads(out)
    assert status == 0 and summary["best_checkpoint"] == f"{tmp_path}/j/best.ckpt"
    assert summary["max_epochs"] == 2 and "Epoch" not in err

    status, out, err = run_in_process("train", *settings, f"output_dir={tmp_path}/v")
    assert status == 0 and "Epoch 1" in out  # without the flags the epoch bar is back
    assert "GPU available" not in out + err and "TPU available" not in out + err  # on a CPU
