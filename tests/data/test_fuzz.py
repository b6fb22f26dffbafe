"""Fuzz: damaged variants of a small dataset through `data info`, `data validate`, `train`
and `dagger`. Each command must either succeed with correct output or fail with exit status
1 and one line naming the problem: any other exception (a traceback) fails the test.

The commands run in-process through the CLI's own error handling (`vismanip.cli.main`), so
a hundred cases cost seconds, not a hundred interpreter start-ups; the subprocess path is
covered once per command in tests/data/test_validate.py and tests/algos.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import one_line_error, run_in_process, write_dataset

from vismanip.envs.tasks import EnvConfig
from vismanip.policies import ImagePolicy, ImagePolicyConfig
from vismanip.policies.checkpoint import save_policy

TRAIN_SETTINGS = [
    "loader.batch_size=4",
    "trainer.max_epochs=1",
    "rollout.every_n_epochs=0",
    "augmentation.shift_pad=0",
    "policy.lowdim_keys=[robot0_eef_pos]",
]


# ---------------------------------------------------------------- variants
def _edit(change: Callable[[h5py.File], object]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        with h5py.File(path, "a") as file:
            change(file)

    return apply


def _replace(file: h5py.File, key: str, value: np.ndarray) -> None:
    del file[key]
    file[key] = value


def _truncate(fraction: float) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return apply


def _scribble(seed: int) -> Callable[[Path], None]:
    """Overwrite a few random byte ranges anywhere in the file (metadata included)."""

    def apply(path: Path) -> None:
        data = bytearray(path.read_bytes())
        rng = np.random.default_rng(seed)
        for _ in range(4):
            start = int(rng.integers(0, len(data) - 64))
            data[start : start + 32] = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(data))

    return apply


def _both_groups(key: str, value: Callable[[int], np.ndarray], demo: str = "demo_1"):
    return _edit(
        lambda f: [
            _replace(f, f"data/{demo}/{group}/{key}", value(len(f[f"data/{demo}/actions"])))
            for group in ("obs", "next_obs")
        ]
    )


def _empty_dataset(path: Path) -> None:
    with h5py.File(path, "a") as file:
        for name in list(file["data"]):
            del file[f"data/{name}"]


VARIANTS: dict[str, Callable[[Path], None]] = {
    "untouched": lambda path: None,
    **{f"truncated at {f:.0%}": _truncate(f) for f in (0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99)},
    **{f"random bytes #{seed}": _scribble(seed) for seed in range(8)},
    "nan action": _edit(lambda f: f["data/demo_0/actions"].__setitem__((2, 3), np.nan)),
    "inf action": _edit(lambda f: f["data/demo_2/actions"].__setitem__((0, 0), np.inf)),
    "nan low-dim obs": _edit(lambda f: f["data/demo_1/obs/robot0_eef_pos"].__setitem__(1, np.nan)),
    "float images": _both_groups("agentview_image", lambda t: np.zeros((t, 32, 32, 3))),
    "string low-dim obs": _both_groups("robot0_eef_pos", lambda t: np.array([b"abc"] * t)),
    "int actions": _edit(
        lambda f: _replace(f, "data/demo_0/actions", np.zeros((5, 7), dtype=np.int64))
    ),
    "missing actions": _edit(lambda f: f.__delitem__("data/demo_1/actions")),
    "missing obs key in one demo": _edit(
        lambda f: [f.__delitem__(f"data/demo_2/{g}/robot0_eef_pos") for g in ("obs", "next_obs")]
    ),
    "missing obs group": _edit(lambda f: f.__delitem__("data/demo_0/obs")),
    "extra obs key everywhere": _edit(
        lambda f: [
            f.create_dataset(f"data/{d}/{g}/extra", data=np.zeros((len(f[f"data/{d}/actions"]), 2)))
            for d in f["data"]
            for g in ("obs", "next_obs")
        ]
    ),
    "one demo at 40x40": _both_groups(
        "agentview_image", lambda t: np.zeros((t, 40, 40, 3), np.uint8)
    ),
    "one demo with wider proprio": _both_groups(
        "robot0_eef_pos", lambda t: np.zeros((t, 4), np.float32)
    ),
    "mask names a missing demo": _edit(lambda f: _replace(f, "mask/valid", np.array([b"demo_9"]))),
    "empty valid mask": _edit(lambda f: _replace(f, "mask/valid", np.array([], dtype="S8"))),
    "empty demo": _edit(
        lambda f: [
            _replace(f, "data/demo_0/actions", np.zeros((0, 7))),
            f["data/demo_0"].attrs.__setitem__("num_samples", 0),
        ]
    ),
    "zero demos": _empty_dataset,
    "demo is an array": _edit(
        lambda f: [f.__delitem__("data/demo_1"), f.create_dataset("data/demo_1", data=[1, 2])]
    ),
}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, Path]:
    """A valid 3-demo dataset and a BC checkpoint for its camera (what DAgger starts from)."""
    folder = tmp_path_factory.mktemp("fuzz")
    dataset = folder / "demos.hdf5"
    write_dataset(dataset, [5, 7, 6])
    policy = ImagePolicy(
        ImagePolicyConfig(cameras=["agentview"], lowdim_keys=["robot0_eef_pos"]),
        32,
        {"robot0_eef_pos": 3},
    )
    init = folder / "bc.ckpt"
    save_policy(init, policy, EnvConfig(task="lift", cameras=["agentview"], image_size=32), None)
    return dataset, init


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_command_succeeds_or_fails_in_one_line(name, source, tmp_path):
    dataset, init = source
    path = tmp_path / "variant.hdf5"
    shutil.copy(dataset, path)
    VARIANTS[name](path)
    damaged = path.read_bytes()

    status, out, err = run_in_process("data", "info", str(path), "--json")
    if status == 0:
        assert '"demos"' in out, out
    else:
        one_line_error(status, err, "info")

    status, out, err = run_in_process("data", "validate", str(path))
    valid = status == 0
    if valid:
        assert out.strip() == f"{path}: valid"
    else:
        lines = err.strip().splitlines()
        assert status == 1 and lines and all(str(path) in line for line in lines), err
    assert (name == "untouched") <= valid, err  # the untouched file stays valid

    run_dir = tmp_path / "train"
    status, out, err = run_in_process(
        "train", f"data={path}", f"output_dir={run_dir}", *TRAIN_SETTINGS
    )
    if status == 0:
        assert (run_dir / "best.ckpt").exists() and out.strip().endswith("best.ckpt")
    else:
        one_line_error(status, err, "train")
        assert not (run_dir / "last.ckpt").exists()

    if not valid:  # a valid file would start DAgger's simulator rollouts: not a fast test
        dagger_dir = tmp_path / "dagger"
        status, out, err = run_in_process(
            "dagger", f"init={init}", f"data={path}", f"output_dir={dagger_dir}", "task=lift"
        )
        one_line_error(status, err, "dagger")
        assert not dagger_dir.exists()
    assert path.read_bytes() == damaged  # no command wrote to the user's file


def test_a_split_smaller_than_one_batch_is_refused_and_reports_no_checkpoint(source, tmp_path):
    dataset, _ = source  # 3 demos, 18 steps: no batch of 64
    run_dir = tmp_path / "train"
    settings = [s for s in TRAIN_SETTINGS if not s.startswith("loader.batch_size")]
    status, out, err = run_in_process(
        "train", f"data={dataset}", f"output_dir={run_dir}", *settings
    )
    one_line_error(status, err, "train")
    assert "fewer than one batch (loader.batch_size=64)" in err and "best.ckpt" not in out
    assert not run_dir.exists()
