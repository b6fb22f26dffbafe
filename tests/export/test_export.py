"""Export: artifacts match the eager policy, run without vismanip, guard the robot, fail clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vismanip.algos.bc import RolloutConfig, TrainConfig, TrainerConfig, train
from vismanip.data.datamodule import LoaderConfig
from vismanip.data.hdf5 import assemble_dataset, write_episode_file
from vismanip.errors import VismanipError
from vismanip.export import FORMATS, DeployablePolicy, ExportedArtifact, export_policy
from vismanip.export.deployable import build_metadata
from vismanip.export.export import recorded_inputs
from vismanip.export.formats import PARITY_TOLERANCE, write_artifact
from vismanip.policies import ImagePolicyConfig
from vismanip.policies.checkpoint import load_policy
from vismanip.rollout.episode import Episode

REPO = Path(__file__).resolve().parents[2]
CAMERAS = ["agentview", "robot0_eye_in_hand"]
ENV_ARGS = json.dumps({"env_name": "Lift", "env_type": 1, "env_kwargs": {"robots": "Panda"}})

try:
    import onnxruntime  # noqa: F401

    HAVE_ONNX = True
except ImportError:
    HAVE_ONNX = False

FORMAT_PARAMS = [
    "torchscript",
    "torch_export",
    pytest.param("onnx", marks=pytest.mark.skipif(not HAVE_ONNX, reason="no onnxruntime")),
]


def _two_camera_episode(steps: int, seed: int) -> Episode:
    rng = np.random.default_rng(seed)
    episode = Episode(seed=seed, success=True)
    for t in range(steps + 1):
        obs = {f"{c}_image": rng.integers(0, 255, (24, 24, 3), dtype=np.uint8) for c in CAMERAS}
        episode._record_obs({**obs, "robot0_eef_pos": rng.normal(size=3)})
        if t < steps:
            episode.actions.append(rng.uniform(-0.8, 0.6, size=7))
            episode.rewards.append(0.0)
            episode.dones.append(t == steps - 1)
            episode.states.append(rng.normal(size=20))
    return episode


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, dataset) of a two-camera policy trained for one epoch on 120 samples."""
    root = tmp_path_factory.mktemp("export")
    data = root / "two_cameras.hdf5"
    shards = []
    for index in range(3):
        shard = root / f"shard_{index}.hdf5"
        write_episode_file(shard, _two_camera_episode(40, index), index, "<mujoco/>")
        shards.append((shard, "demo"))
    assemble_dataset(data, shards, ENV_ARGS, 3, 0.34, 0, "{}")
    config = TrainConfig(
        data=str(data),
        output_dir=str(root / "run"),
        loader=LoaderConfig(batch_size=16),
        trainer=TrainerConfig(max_epochs=1),
        rollout=RolloutConfig(every_n_epochs=0),
        policy=ImagePolicyConfig(
            cameras=CAMERAS, lowdim_keys=["robot0_eef_pos"], num_keypoints=8, feature_dim=16
        ),
    )
    return Path(train(config)), data


def _eager(checkpoint: Path) -> DeployablePolicy:
    return DeployablePolicy(load_policy(checkpoint).weights.build())


@pytest.mark.parametrize("fmt", FORMAT_PARAMS)
def test_artifact_runs_without_vismanip_and_matches_eager(trained, tmp_path, fmt):
    checkpoint, data = trained
    out = tmp_path / f"policy{FORMATS[fmt]}"
    report = export_policy(checkpoint, out, fmt)
    assert out.is_file() and report.max_abs_diff <= PARITY_TOLERANCE[fmt]
    assert not list(tmp_path.glob("*unverified*"))

    eager = _eager(checkpoint)
    inputs = recorded_inputs(eager.policy, data, 100)
    names = ["agentview_image", "robot0_eye_in_hand_image", "proprio"]
    np.savez(tmp_path / "inputs.npz", **{n: x.numpy() for n, x in zip(names, inputs, strict=True)})
    # The robot-side example, in a process where vismanip (and kornia) cannot be imported.
    argv = [str(out), "--steps", "20", "--rate", "1000", "--inputs", str(tmp_path / "inputs.npz")]
    argv += ["--save-actions", str(tmp_path / "actions.npy")]
    program = (
        "import runpy, sys; sys.modules['vismanip'] = None; sys.modules['kornia'] = None; "
        f"sys.argv = ['run_exported_policy.py', *{argv!r}]; "
        f"runpy.run_path({str(REPO / 'scripts' / 'run_exported_policy.py')!r}, run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Warning" not in result.stderr, result.stderr
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert stats["steps"] == 20 and stats["fallbacks"] == 0

    with torch.no_grad():
        expected, _ = eager(*(x[:20] for x in inputs))
    sent = np.load(tmp_path / "actions.npy")
    assert np.abs(sent - expected.numpy()).max() <= PARITY_TOLERANCE[fmt]

    metadata = ExportedArtifact(out).metadata
    assert metadata["inputs"] == names and metadata["cameras"] == CAMERAS
    assert metadata["proprio_dims"] == [3] and metadata["action_dim"] == 7
    assert metadata["train_config_sha256"] and metadata["vismanip_version"]


def test_safeguards_clamp_and_hold(trained, tmp_path):
    checkpoint, _ = trained
    eager = _eager(checkpoint)
    # The fixture's demonstrated actions lie in [-0.8, 0.6]: the module stored that range.
    assert torch.all(eager.policy.action_low >= -0.8) and torch.all(eager.policy.action_high <= 0.6)
    eager.policy.set_action_range(np.full(7, -0.05), np.full(7, 0.05))  # force clamping
    out = tmp_path / "guarded.pt"
    metadata = build_metadata(eager.policy, None, None, "torchscript")
    write_artifact(eager, tuple(eager_inputs(eager)), out, "torchscript", metadata)
    artifact = ExportedArtifact(out)

    images_a, images_b, proprio = eager_inputs(eager, batch=3)
    proprio[1, 0] = float("nan")
    proprio[2, 2] = float("inf")
    action, fallback = artifact(images_a, images_b, proprio)
    assert fallback.tolist() == [False, True, True]
    assert np.all(np.abs(action[0]) <= 0.05 + 1e-7)
    assert np.all(action[1:] == 0.0)  # the hold action
    assert np.all(np.isfinite(action))


def eager_inputs(module: DeployablePolicy, batch: int = 2) -> list[torch.Tensor]:
    from vismanip.export.deployable import example_inputs

    return list(example_inputs(module.policy, batch=batch, size=40))  # not the trained size


def test_failed_parity_writes_nothing(trained, tmp_path, monkeypatch):
    checkpoint, _ = trained
    monkeypatch.setitem(PARITY_TOLERANCE, "torchscript", -1.0)
    out = tmp_path / "policy.pt"
    with pytest.raises(VismanipError, match="differs from the eager policy.*not written"):
        export_policy(checkpoint, out)
    assert list(tmp_path.iterdir()) == []


def test_cli_export_is_quiet_and_errors_are_one_line(trained, tmp_path):
    checkpoint, _ = trained

    def cli(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "vismanip.cli", "export", str(checkpoint), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    done = cli("--format", "torch_export", "--out", str(tmp_path / "p.pt2"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "max |exported - eager|" in done.stdout
    assert "arning" not in done.stderr and "arning" not in done.stdout

    for args, message in [
        (("--out", str(tmp_path / "p.zip")), "unknown artifact type '.zip'"),
        (("--format", "onnx", "--out", str(tmp_path / "p.pt")), "must end in .onnx"),
        (("--data", str(tmp_path / "missing.hdf5")), "missing.hdf5 not found"),
    ]:
        failed = cli(*args)
        assert failed.returncode == 1
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


def test_unreadable_artifact_is_one_clear_error(tmp_path):
    junk = tmp_path / "policy.pt"
    junk.write_bytes(b"not a zip archive")
    with pytest.raises(VismanipError, match="not a readable torchscript artifact"):
        ExportedArtifact(junk)


def test_artifacts_are_not_tied_to_the_cpu(trained, tmp_path):
    """No CUDA here, so check what breaks a GPU load: device constants frozen in the graph."""
    import warnings

    from torch.export.passes import move_to_device_pass

    checkpoint, _ = trained
    export_policy(checkpoint, tmp_path / "p.pt")
    export_policy(checkpoint, tmp_path / "p.pt2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = str(torch.jit.load(str(tmp_path / "p.pt")).inlined_graph)
    assert "Device = prim::Constant" not in graph  # map_location="cuda" then moves everything

    program = move_to_device_pass(torch.export.load(str(tmp_path / "p.pt2")), "meta")
    meta_inputs = [
        torch.zeros(1, 50, 60, 3, dtype=torch.uint8, device="meta"),
        torch.zeros(1, 24, 24, 3, dtype=torch.uint8, device="meta"),
        torch.zeros(1, 3, device="meta"),
    ]
    action, fallback = program.module()(*meta_inputs)
    assert action.device.type == "meta" and tuple(action.shape) == (1, 7)


def test_robot_side_override_holds_the_robot(trained, tmp_path):
    checkpoint, _ = trained
    out = tmp_path / "policy.pt"
    export_policy(checkpoint, out)
    stop = tmp_path / "STOP"
    stop.touch()
    command = [
        sys.executable, str(REPO / "scripts" / "run_exported_policy.py"), str(out),
        "--steps", "5", "--rate", "1000", "--stop-file", str(stop),
        "--save-actions", str(tmp_path / "sent.npy"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert stats["overridden"] == 5
    assert np.all(np.load(tmp_path / "sent.npy") == 0.0)  # the hold action, every step


@pytest.mark.parametrize("moments", [1, pytest.param(6, marks=pytest.mark.slow)])
def test_killed_export_leaves_no_half_artifact_and_the_rerun_matches(trained, tmp_path, moments):
    """kill -9 at several moments of `vismanip export`: the artifact is absent or complete,
    never half-written, and the same command then writes what an uninterrupted one does."""
    checkpoint, data = trained
    reference = tmp_path / "reference.pt"
    command = [sys.executable, "-m", "vismanip.cli", "export", str(checkpoint), "--out"]
    done = subprocess.run([*command, str(reference)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    obs = recorded_inputs(load_policy(checkpoint).weights.build(), data, 4)
    expected = ExportedArtifact(reference)(*obs)[0]
    for kill_after in np.random.default_rng(moments).uniform(2.0, 12.0, size=moments):
        out = tmp_path / f"killed_{kill_after:.1f}.pt"
        process = subprocess.Popen(
            [*command, str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if out.exists():  # it finished before the kill: then it is whole
            np.testing.assert_array_equal(ExportedArtifact(out)(*obs)[0], expected)
        again = subprocess.run([*command, str(out)], capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
        np.testing.assert_array_equal(ExportedArtifact(out)(*obs)[0], expected)


@pytest.fixture(scope="module", params=["chunk", "history"])
def trained_stateful(request, trained, tmp_path_factory) -> Path:
    """A stateful policy trained on the same data: action chunking (temporal ensembling)
    or observation history (the last 3 observations)."""
    _, data = trained
    state = (
        {"head": "chunk", "chunk_size": 5, "ensemble_decay": 0.3}
        if request.param == "chunk"
        else {"frames": 3}
    )
    config = TrainConfig(
        data=str(data),
        output_dir=str(tmp_path_factory.mktemp(request.param) / "run"),
        loader=LoaderConfig(batch_size=16),
        trainer=TrainerConfig(max_epochs=1),
        rollout=RolloutConfig(every_n_epochs=0),
        policy=ImagePolicyConfig(
            cameras=CAMERAS,
            lowdim_keys=["robot0_eef_pos"],
            num_keypoints=8,
            feature_dim=16,
            **state,
        ),
    )
    return Path(train(config))


def test_stateful_policy_exports_with_its_state_and_reset(trained, trained_stateful, tmp_path):
    from vismanip.policies.artifact import ExportedPolicyActor

    _, data = trained
    out = tmp_path / "policy.pt"
    report = export_policy(trained_stateful, out)
    assert report.max_abs_diff <= PARITY_TOLERANCE["torchscript"] and report.samples > 5
    metadata = ExportedArtifact(out).metadata
    assert metadata["stateful"] is True and metadata["batch"].startswith("1")
    graph = str(torch.jit.load(str(out)).inlined_graph)
    assert "Device = prim::Constant" not in graph  # its state moves to a GPU with the rest

    # As evaluation runs it: episode after episode, reset() between; the artifact's actions
    # follow the eager policy's step by step, and differ from what it answers without its
    # state (the state is really there).
    eager = load_policy(trained_stateful).weights.build()
    actor = ExportedPolicyActor(out)
    obs = first_steps(eager, data)
    for _ in range(2):
        eager.reset()
        actor.reset()
        for t in range(8):
            step = {key: value[t].numpy() for key, value in obs.items()}
            expected = eager.select_action(step)
            assert np.abs(actor.select_action(step) - expected).max() <= 1e-5
    batch = {key: value[7:8] for key, value in obs.items()}
    if eager.config.frames > 1:  # predict() reads stacked observations: here the last one x3
        batch = {
            key: value[:, None].expand(-1, 3, *value.shape[1:]) for key, value in batch.items()
        }
    assert np.abs(eager.predict(batch)[0].detach().numpy() - expected).max() > 1e-6

    with pytest.raises(VismanipError, match="keeps state between steps") as error:
        export_policy(trained_stateful, tmp_path / "policy.pt2")
    assert "\n" not in str(error.value) and not (tmp_path / "policy.pt2").exists()


def first_steps(policy, data: Path) -> dict[str, torch.Tensor]:
    """The first demo's first 8 observations, by key."""
    from vismanip.data.datamodule import DemoDataset

    dataset = DemoDataset(data, ["demo_0"], policy.image_keys + policy.lowdim_keys, 0)
    return dataset.__getitems__(list(range(8)))["obs"]
