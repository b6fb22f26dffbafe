import numpy as np
import pytest
import torch

from vismanip.errors import VismanipError
from vismanip.policies import ImagePolicy, ImagePolicyConfig

LOWDIM = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}


def _batch(size=8, image=32):
    generator = torch.Generator().manual_seed(0)
    obs = {
        "agentview_image": torch.randint(
            0, 255, (size, image, image, 3), dtype=torch.uint8, generator=generator
        ),
        **{key: torch.randn(size, dim, generator=generator) for key, dim in LOWDIM.items()},
    }
    return {"obs": obs, "actions": torch.rand(size, 7, generator=generator) * 2 - 1}


@pytest.mark.parametrize("head", ["deterministic", "gmm"])
@pytest.mark.parametrize("encoder", ["compact", "resnet18"])
def test_shapes_and_action_range(head, encoder):
    policy = ImagePolicy(
        ImagePolicyConfig(cameras=["agentview"], head=head, encoder=encoder), 32, LOWDIM
    )
    batch = _batch()
    loss, info = policy(batch)
    assert loss.ndim == 0 and torch.isfinite(loss) and "loss" in info
    actions = policy.predict(batch["obs"])
    assert actions.shape == (8, 7) and actions.abs().max() <= 1
    single = {key: value[0].numpy() for key, value in batch["obs"].items()}
    action = policy.select_action(single)
    assert action.shape == (7,) and action.dtype == np.float64


def test_normalization_travels_with_the_weights():
    policy = ImagePolicy(ImagePolicyConfig(cameras=["agentview"]), 32, LOWDIM)
    policy.set_normalization(np.arange(9.0), np.full(9, 2.0))
    rebuilt = ImagePolicy.from_description(policy.describe())
    rebuilt.load_state_dict(policy.state_dict())
    torch.testing.assert_close(rebuilt.lowdim_mean, torch.arange(9.0))
    batch = _batch()
    torch.testing.assert_close(
        rebuilt.eval().predict(batch["obs"]), policy.eval().predict(batch["obs"])
    )
    # The statistics change the output: they are really used.
    policy.set_normalization(np.zeros(9), np.ones(9))
    assert not torch.allclose(rebuilt.predict(batch["obs"]), policy.predict(batch["obs"]))


def test_a_std_floor_keeps_a_nearly_still_proprio_value_from_dominating():
    """A demo value that barely moves (std 0.003, as the upright gripper's quaternion w)
    is normalised by the floor instead: a small change of it is a small input."""
    std = np.array([0.04, 0.02, 0.07, 0.02, 0.2, 0.016, 0.003, 0.007, 0.0])
    plain = ImagePolicy(ImagePolicyConfig(cameras=["agentview"]), 32, LOWDIM)
    plain.set_normalization(np.zeros(9), std)
    floored = ImagePolicy(
        ImagePolicyConfig(cameras=["agentview"], lowdim_std_floor=0.02), 32, LOWDIM
    )
    floored.set_normalization(np.zeros(9), std)
    assert plain.lowdim_std[6] == pytest.approx(0.003) and plain.lowdim_std[8] == 1.0
    expected = [0.04, 0.02, 0.07, 0.02, 0.2, 0.02, 0.02, 0.02, 1.0]
    torch.testing.assert_close(floored.lowdim_std, torch.tensor(expected))
    # Floored on the quaternion alone: its tilt components, not its yaw or the rest.
    quat_only = ImagePolicyConfig(
        cameras=["agentview"],
        lowdim_std_floor=0.1,
        lowdim_std_floor_keys=["robot0_eef_quat"],
    )
    floored = ImagePolicy(quat_only, 32, LOWDIM)
    floored.set_normalization(np.zeros(9), std)
    expected = [0.04, 0.02, 0.07, 0.1, 0.2, 0.1, 0.1, 0.007, 1.0]
    torch.testing.assert_close(floored.lowdim_std, torch.tensor(expected))
    with pytest.raises(VismanipError, match="policy.lowdim_std_floor_keys"):
        ImagePolicy(
            ImagePolicyConfig(cameras=["agentview"], lowdim_std_floor_keys=["x"]), 32, LOWDIM
        )


def test_a_trained_policy_can_be_floored_afterwards_as_training_would_have():
    """GAIL's init_lowdim_std_floor: the stored std is floored where the config names,
    and the checkpoint's description records the floor."""
    std = np.array([0.04, 0.02, 0.07, 0.02, 0.2, 0.016, 0.003, 0.007, 0.0])
    trained = ImagePolicy(ImagePolicyConfig(cameras=["agentview"]), 32, LOWDIM)
    trained.set_normalization(np.zeros(9), std)
    trained.floor_lowdim_std(0.05, ["robot0_eef_quat"])
    as_if = ImagePolicyConfig(
        cameras=["agentview"], lowdim_std_floor=0.05, lowdim_std_floor_keys=["robot0_eef_quat"]
    )
    floored_in_training = ImagePolicy(as_if, 32, LOWDIM)
    floored_in_training.set_normalization(np.zeros(9), std)
    torch.testing.assert_close(trained.lowdim_std, floored_in_training.lowdim_std)
    assert trained.describe()["config"]["lowdim_std_floor_keys"] == ["robot0_eef_quat"]
    with pytest.raises(VismanipError, match="proprio keys to floor .* must be among"):
        trained.floor_lowdim_std(0.05, ["object_pos"])


def test_raw_lowdim_keys_are_fed_unnormalised():
    config = ImagePolicyConfig(cameras=["agentview"], raw_lowdim_keys=["robot0_eef_quat"])
    policy = ImagePolicy(config, 32, LOWDIM)
    policy.set_normalization(np.full(9, 0.5), np.full(9, 0.003))
    torch.testing.assert_close(policy.lowdim_mean[3:7], torch.zeros(4))
    torch.testing.assert_close(policy.lowdim_std[3:7], torch.ones(4))
    assert policy.lowdim_std[0] == pytest.approx(0.003) and policy.lowdim_mean[8] == 0.5
    with pytest.raises(VismanipError, match="policy.raw_lowdim_keys"):
        ImagePolicy(ImagePolicyConfig(cameras=["agentview"], raw_lowdim_keys=["x"]), 32, LOWDIM)


def test_images_of_another_size_are_resized_inside():
    policy = ImagePolicy(ImagePolicyConfig(cameras=["agentview"]), 32, LOWDIM).eval()
    assert policy.predict(_batch(image=48)["obs"]).shape == (8, 7)


def test_bad_settings_name_the_choice():
    with pytest.raises(VismanipError, match="unknown encoder 'vit'"):
        ImagePolicy(ImagePolicyConfig(cameras=["agentview"], encoder="vit"), 32, LOWDIM)
    with pytest.raises(VismanipError, match="policy.head"):
        ImagePolicy(ImagePolicyConfig(cameras=["agentview"], head="diffusion"), 32, LOWDIM)


def _chunk_batch(size=8, chunk=4):
    batch = _batch(size)
    generator = torch.Generator().manual_seed(1)
    batch["actions"] = torch.rand(size, chunk, 7, generator=generator) * 2 - 1
    batch["action_mask"] = torch.ones(size, chunk, dtype=torch.bool)
    batch["action_mask"][:, 2:] = False
    return batch


def test_chunk_head_learns_only_the_actions_inside_the_demo():
    policy = ImagePolicy(
        ImagePolicyConfig(cameras=["agentview"], head="chunk", chunk_size=4), 32, LOWDIM
    )
    batch = _chunk_batch()
    loss, _ = policy(batch)
    assert policy.predict_chunk(batch["obs"]).shape == (8, 4, 7)
    assert policy.predict(batch["obs"]).shape == (8, 7)
    batch["actions"][:, 2:] = 0.9  # padded targets: the loss must not see them
    torch.testing.assert_close(policy(batch)[0], loss)
    batch["actions"][:, 1] = 0.9
    assert not torch.allclose(policy(batch)[0], loss)


def test_temporal_ensemble_weighs_earlier_chunks_and_reset_forgets_them():
    decay = 0.5
    config = ImagePolicyConfig(
        cameras=["agentview"], head="chunk", chunk_size=3, ensemble_decay=decay
    )
    policy = ImagePolicy(config, 32, LOWDIM).eval()
    obs = _batch(size=3)["obs"]
    steps = [{key: value[t].numpy() for key, value in obs.items()} for t in range(3)]
    chunks = [policy.predict_chunk({k: v[t : t + 1] for k, v in obs.items()})[0] for t in range(3)]
    policy.reset()
    taken = [torch.from_numpy(policy.select_action(step)).float() for step in steps]
    torch.testing.assert_close(taken[0], chunks[0][0])  # the first chunk alone
    # step 1: the chunk from step 0 (one step older) weighs exp(decay), the new one 1
    older = torch.exp(torch.tensor(decay))
    torch.testing.assert_close(taken[1], (chunks[1][0] + older * chunks[0][1]) / (1 + older))
    expected = (chunks[2][0] + older * chunks[1][1] + older**2 * chunks[0][2]) / (
        1 + older + older**2
    )
    torch.testing.assert_close(taken[2], expected)
    policy.reset()  # a new episode starts from its own first chunk only
    torch.testing.assert_close(
        torch.from_numpy(policy.select_action(steps[2])).float(), chunks[2][0]
    )
    # run-time state is not part of the weights
    assert not any("ensemble" in key for key in policy.state_dict())


def test_observation_history_reads_the_last_frames_and_pads_the_first():
    config = ImagePolicyConfig(cameras=["agentview"], frames=3, head="chunk", chunk_size=2)
    policy = ImagePolicy(config, 32, LOWDIM).eval()
    obs = _batch(size=3)["obs"]
    steps = [{key: value[t].numpy() for key, value in obs.items()} for t in range(3)]

    def stacked(order):  # (1, 3, ...) observations in the order given, oldest first
        return {key: value[order][None] for key, value in obs.items()}

    policy.reset()
    first = torch.from_numpy(policy.select_action(steps[0])).float()
    torch.testing.assert_close(first, policy.predict(stacked([0, 0, 0]))[0])
    policy.select_action(steps[1])
    policy.ensemble.reset()  # isolate the history: the next action is this chunk's first
    third = torch.from_numpy(policy.select_action(steps[2])).float()
    torch.testing.assert_close(third, policy.predict(stacked([0, 1, 2]))[0])
    # training reads stacked batches (B, frames, ...) and learns
    batch = _chunk_batch(size=4, chunk=2)
    batch["obs"] = {
        key: value[:, None].expand(-1, 3, *value.shape[1:]) for key, value in batch["obs"].items()
    }
    loss, _ = policy.train()(batch)
    assert torch.isfinite(loss)
