"""A full disk or a read-only folder fails a long job with one line and keeps every file
written before it, and leaves no temporary behind.

The filesystem error is raised by the writer itself (`ENOSPC` / `EROFS` from h5py's file
creation or Lightning's checkpoint writer), as a real full disk would raise it: CI cannot
mount a small filesystem.
"""

from __future__ import annotations

import errno

import h5py
import pytest
import torch
from conftest import one_line_error, run_in_process, write_dataset
from lightning.pytorch.plugins.io import TorchCheckpointIO

import vismanip.data.hdf5

DISK_ERRORS = {"full": errno.ENOSPC, "read-only": errno.EROFS}


def _failing(code: int):
    def fail(self, checkpoint, path, *args, **kwargs):
        raise OSError(code, "simulated disk error", str(path))

    return fail


@pytest.mark.sim
@pytest.mark.parametrize("kind", ["full", pytest.param("read-only", marks=pytest.mark.slow)])
def test_collection_on_a_full_disk_keeps_the_dataset_and_resumes(tmp_path, monkeypatch, kind):
    out = tmp_path / "lift.hdf5"
    command = ["collect", "--task", "lift", "--workers", "1", "--size", "32", "--out", str(out)]
    assert run_in_process(*command, "--episodes", "2")[0] == 0
    before = out.read_bytes()

    real_file = h5py.File

    def file(name, mode="r", *args, **kwargs):
        if mode == "w":
            raise OSError(DISK_ERRORS[kind], "simulated disk error", str(name))
        return real_file(name, mode, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(vismanip.data.hdf5.h5py, "File", file)
        status, _, err = run_in_process(*command, "--episodes", "3")
    one_line_error(status, err, "collect")
    assert "files written before are kept" in err
    assert out.read_bytes() == before
    assert not list(tmp_path.rglob("*.tmp"))
    # Room again: the same command finishes the job.
    assert run_in_process(*command, "--episodes", "3")[0] == 0
    with h5py.File(out) as dataset:
        assert len(dataset["data"]) == 3


@pytest.mark.parametrize("kind", sorted(DISK_ERRORS))
def test_training_on_a_full_disk_keeps_the_last_checkpoint(tmp_path, monkeypatch, kind):
    data, run_dir = tmp_path / "demos.hdf5", tmp_path / "run"
    write_dataset(data, [5, 7, 6])
    settings = [
        f"data={data}",
        f"output_dir={run_dir}",
        "loader.batch_size=4",
        "trainer.max_epochs=1",
        "rollout.every_n_epochs=0",
        "augmentation.shift_pad=0",
        "policy.lowdim_keys=[robot0_eef_pos]",
    ]
    assert run_in_process("train", *settings)[0] == 0
    last = run_dir / "last.ckpt"
    before = last.read_bytes()

    with monkeypatch.context() as patch:
        patch.setattr(TorchCheckpointIO, "save_checkpoint", _failing(DISK_ERRORS[kind]))
        status, _, err = run_in_process("train", "--resume", str(run_dir), "trainer.max_epochs=2")
    one_line_error(status, err, "train")
    assert last.read_bytes() == before
    assert torch.load(last, weights_only=False)["epoch"] == 0
    assert not list(run_dir.rglob("*.tmp"))
    assert run_in_process("train", "--resume", str(run_dir), "trainer.max_epochs=2")[0] == 0
    assert torch.load(last, weights_only=False)["epoch"] == 1
