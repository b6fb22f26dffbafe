"""`vismanip data merge`: one file with every demo renumbered, masks merged, provenance kept;
inputs that disagree on env settings or observations are refused in one line."""

from __future__ import annotations

import json

import h5py
import numpy as np
from conftest import one_line_error, run_in_process, write_dataset


def test_merge_renumbers_keeps_masks_and_provenance(tmp_path):
    first, second, out = tmp_path / "a" / "a.hdf5", tmp_path / "b" / "b.hdf5", tmp_path / "m.hdf5"
    first.parent.mkdir(), second.parent.mkdir()
    a, b = write_dataset(first, [5, 7, 6]), write_dataset(second, [4, 8])
    status, out_text, err = run_in_process("data", "merge", str(out), str(first), str(second))
    assert status == 0, err
    assert "5 demos from 2 files" in out_text
    assert run_in_process("data", "validate", str(out))[0] == 0
    with h5py.File(out) as merged, h5py.File(first) as fa, h5py.File(second) as fb:
        data = merged["data"]
        assert sorted(data, key=lambda n: int(n.split("_")[1])) == [f"demo_{i}" for i in range(5)]
        assert int(data.attrs["total"]) == 5 + 7 + 6 + 4 + 8
        for index, episode in enumerate([*a, *b]):
            np.testing.assert_array_equal(data[f"demo_{index}/actions"][()], episode.actions)
        assert data["demo_3"].attrs["source_file"] == str(second)
        assert data["demo_3"].attrs["source_demo"] == "demo_0"
        provenance = json.loads(data.attrs["merged_from"])
        assert [p["demos"] for p in provenance] == [3, 2]
        for split in ("train", "valid"):
            expected = [n.decode() for n in fa[f"mask/{split}"][()]] + [
                f"demo_{3 + int(n.decode().split('_')[1])}" for n in fb[f"mask/{split}"][()]
            ]
            assert [n.decode() for n in merged[f"mask/{split}"][()]] == expected


def test_merge_refuses_disagreeing_inputs_and_writes_nothing(tmp_path):
    first, other, out = tmp_path / "a.hdf5", tmp_path / "o.hdf5", tmp_path / "m.hdf5"
    write_dataset(first, [5, 6])
    (tmp_path / "o").mkdir()
    write_dataset(tmp_path / "o" / "o.hdf5", [5, 6])
    other = tmp_path / "o" / "o.hdf5"
    with h5py.File(other, "a") as file:
        args = json.loads(file["data"].attrs["env_args"])
        args["env_kwargs"]["control_freq"] = 10
        file["data"].attrs["env_args"] = json.dumps(args)
    status, _, err = run_in_process("data", "merge", str(out), str(first), str(other))
    one_line_error(status, err, "merge")
    assert "env_args['env_kwargs']" in err and not out.exists()

    with h5py.File(other, "a") as file:
        file["data"].attrs["env_args"] = json.dumps(
            json.loads(h5py.File(first)["data"].attrs["env_args"])
        )
        for name in file["data"]:
            for group in ("obs", "next_obs"):
                del file[f"data/{name}/{group}/object"]
    status, _, err = run_in_process("data", "merge", str(out), str(first), str(other))
    one_line_error(status, err, "merge")
    assert "next_obs/object is missing" in err and not out.exists()
    one_line_error(*run_in_process("data", "merge", str(first), str(first))[:3:2], "merge")


def test_training_reads_several_files_as_one(tmp_path):
    from vismanip.data.datamodule import DemoDataModule, LoaderConfig

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "part1.hdf5", tmp_path / "b" / "part2.hdf5"
    write_dataset(first, [5, 7, 6])
    write_dataset(second, [4, 8])
    keys = ["agentview_image", "robot0_eef_pos"]
    single = [
        DemoDataModule(str(path), LoaderConfig(batch_size=4), keys) for path in (first, second)
    ]
    both = DemoDataModule(f"{first},{second}", LoaderConfig(batch_size=4), keys)
    globbed = DemoDataModule(str(tmp_path / "*" / "part*.hdf5"), LoaderConfig(batch_size=4), keys)
    for module in (*single, both, globbed):
        module.setup()
    assert len(both.train_set) == len(globbed.train_set) == sum(len(m.train_set) for m in single)
    assert len(both.valid_set) == sum(len(m.valid_set) for m in single)
    # A batch across the files keeps each sample's own action, in the order asked.
    rows = [0, len(single[0].train_set), 1, len(both.train_set) - 1]
    batch = both.train_set.__getitems__(rows)
    expected = [
        single[0].train_set.__getitems__([0])["actions"][0],
        single[1].train_set.__getitems__([0])["actions"][0],
        single[0].train_set.__getitems__([1])["actions"][0],
        single[1].train_set.__getitems__([len(single[1].train_set) - 1])["actions"][0],
    ]
    np.testing.assert_array_equal(batch["actions"].numpy(), np.stack(expected))
    assert batch["obs"]["agentview_image"].shape[0] == 4

    run_dir = tmp_path / "run"
    settings = [
        f"output_dir={run_dir}", "loader.batch_size=4", "trainer.max_epochs=1",
        "rollout.every_n_epochs=0", "augmentation.shift_pad=0", "policy.lowdim_keys=[robot0_eef_pos]",
    ]  # fmt: skip
    status, _, err = run_in_process("train", f"data={tmp_path}/*/part*.hdf5", *settings)
    assert status == 0, err
    assert (run_dir / "best.ckpt").exists()
    status, _, err = run_in_process(
        "train", f"data={tmp_path}/none*.hdf5", f"output_dir={tmp_path}/run2", *settings[1:]
    )
    one_line_error(status, err, "train")
    assert "no file matches" in err


def test_merge_first_keeps_each_inputs_first_demos_and_their_masks(tmp_path):
    source, out = tmp_path / "s.hdf5", tmp_path / "subset.hdf5"
    episodes = write_dataset(source, [5, 7, 6, 4, 8])
    status, out_text, err = run_in_process("data", "merge", str(out), str(source), "--first", "3")
    assert status == 0, err
    assert "3 demos from 1 files" in out_text
    assert run_in_process("data", "validate", str(out))[0] == 0
    with h5py.File(out) as subset, h5py.File(source) as full:
        data = subset["data"]
        assert sorted(data) == ["demo_0", "demo_1", "demo_2"]
        for index, episode in enumerate(episodes[:3]):
            np.testing.assert_array_equal(data[f"demo_{index}/actions"][()], episode.actions)
        assert int(data.attrs["total"]) == 5 + 7 + 6
        assert int(data.attrs["attempts"]) == 3
        assert json.loads(data.attrs["merged_from"])[0] == {
            "path": str(source), "demos": 3, "of": 5, "first": "demo_0"
        }  # fmt: skip
        for split in ("train", "valid"):
            kept = [n.decode() for n in full[f"mask/{split}"][()] if int(n.decode()[5:]) < 3]
            assert [n.decode() for n in subset[f"mask/{split}"][()]] == kept
    status, _, err = run_in_process(
        "data", "merge", str(tmp_path / "x.hdf5"), str(source), "--first", "0"
    )
    one_line_error(status, err, "merge")
    assert "--first must be >= 1" in err and not (tmp_path / "x.hdf5").exists()
