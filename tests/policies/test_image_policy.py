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


def test_images_of_another_size_are_resized_inside():
    policy = ImagePolicy(ImagePolicyConfig(cameras=["agentview"]), 32, LOWDIM).eval()
    assert policy.predict(_batch(image=48)["obs"]).shape == (8, 7)


def test_bad_settings_name_the_choice():
    with pytest.raises(VismanipError, match="unknown encoder 'vit'"):
        ImagePolicy(ImagePolicyConfig(cameras=["agentview"], encoder="vit"), 32, LOWDIM)
    with pytest.raises(VismanipError, match="policy.head"):
        ImagePolicy(ImagePolicyConfig(cameras=["agentview"], head="diffusion"), 32, LOWDIM)
