"""The discriminator and the off-policy learner GAIL trains between rollout batches.

From torchrl (well kept, and it fits a rollout loop of our own): `GAILLoss` (the
discriminator's binary cross-entropy with the gradient penalty on expert/policy
interpolates), `SACLoss` (twin-Q soft actor-critic with a learned temperature), `SoftUpdate`
(target networks) and `ReplayBuffer`. Ours, because no library has them in this shape:
the actor that wraps the BC policy's trunk and head (its encoder frozen), DAC's absorbing
states, the reward from D, and the BC term that keeps the actor near the demos (ROT).
"""

from __future__ import annotations

import logging
import math

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import Tensor, nn
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.modules import ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import GAILLoss, SACLoss, SoftUpdate, ValueEstimators

from vismanip.algos.gail.configuration import GailConfig
from vismanip.envs.actions import ACTION_DIM
from vismanip.policies import ImagePolicy

# torchrl logs an INFO line per buffer it allocates: keep the user's console for progress.
logging.getLogger("torchrl").setLevel(logging.WARNING)

EPS = 1e-6


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for inputs, outputs in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(inputs, outputs), nn.ReLU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class PairNet(nn.Module):
    """An MLP over two concatenated inputs: Q(s, a), or D(s, a) / D(s, s') with a sigmoid."""

    def __init__(self, first: int, second: int, hidden: list[int], probability: bool) -> None:
        super().__init__()
        self.net = mlp([first + second, *hidden, 1])
        self.probability = probability

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        out = self.net(torch.cat([first, second], dim=-1))
        return torch.sigmoid(out) if self.probability else out


class GaussianHead(nn.Module):
    """The BC policy's trunk and head as a Gaussian before the tanh: mean from the policy,
    one learned log-std per action dimension (exploration exists only in training)."""

    def __init__(self, policy: ImagePolicy, init_std: float) -> None:
        super().__init__()
        self.policy = policy
        self.log_std = nn.Parameter(torch.full((ACTION_DIM,), math.log(init_std)))

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        mean = self.policy.action_mean(features)
        return mean, self.log_std.clamp(-5.0, 1.0).exp().expand_as(mean)


class GailLearner(nn.Module):
    """Discriminator + SAC on the policy's head + BC term; `update()` is one step of each."""

    def __init__(
        self,
        policy: ImagePolicy,
        feature_dim: int,
        observation_dim: int,
        expert: TensorDict,
        config: GailConfig,
    ) -> None:
        super().__init__()
        self.config = config
        self.policy = policy
        for parameter in [*policy.encoders.parameters()]:
            parameter.requires_grad_(False)  # the encoder stays as BC trained it
        observation_dim += 1  # the absorbing indicator
        second = ACTION_DIM if config.disc.pairs == "state_action" else observation_dim
        self.discriminator = PairNet(observation_dim, second, config.disc.hidden, True)
        self.gail_loss = GAILLoss(
            TensorDictModule(self.discriminator, ["observation", "action"], ["d_logits"]),
            use_grad_penalty=config.disc.grad_penalty > 0,
            gp_lambda=config.disc.grad_penalty,
        )
        self.head = GaussianHead(policy, config.learner.init_std)
        actor = ProbabilisticActor(
            TensorDictModule(self.head, ["features"], ["loc", "scale"]),
            in_keys=["loc", "scale"],
            distribution_class=TanhNormal,
        )
        critic = ValueOperator(
            PairNet(observation_dim, ACTION_DIM, config.learner.critic_hidden, False),
            in_keys=["observation", "action"],
        )
        self.sac_loss = SACLoss(
            actor,
            critic,
            num_qvalue_nets=2,
            target_entropy=-ACTION_DIM,
            alpha_init=config.learner.alpha_init,
        )
        self.sac_loss.make_value_estimator(ValueEstimators.TD0, gamma=config.learner.gamma)
        # SACLoss registers its target-entropy buffer on first use; make it exist now, so
        # that a resumed run's state_dict has the same keys as a fresh one.
        _ = self.sac_loss.target_entropy
        self.target_update = SoftUpdate(self.sac_loss, tau=config.learner.tau)
        learner = config.learner
        self.actor_optim = torch.optim.Adam(
            [*policy.trunk.parameters(), *policy.head.parameters(), self.head.log_std],
            lr=learner.actor_lr,
        )
        self.critic_optim = torch.optim.Adam(
            self.sac_loss.qvalue_network_params.values(True, True), lr=learner.critic_lr
        )
        self.alpha_optim = torch.optim.Adam([self.sac_loss.log_alpha], lr=learner.critic_lr)
        self.disc_optim = torch.optim.Adam(self.discriminator.parameters(), lr=config.disc.lr)
        self.expert = expert
        self.replay = ReplayBuffer(
            storage=LazyTensorStorage(learner.replay_size), batch_size=learner.batch_size
        )
        self.updates = 0

    # ------------------------------------------------------------------ data
    def add(self, transitions: TensorDict) -> None:
        self.replay.extend(transitions)

    def _d_pair(self, td: TensorDict) -> Tensor:
        return (
            td["action"] if self.config.disc.pairs == "state_action" else td["next", "observation"]
        )

    @torch.no_grad()
    def reward(self, td: TensorDict) -> Tensor:
        """The learner's reward for a batch: from D, or the task's sparse success reward."""
        if self.config.reward_source == "success":
            return td["task_reward"]
        d = self.discriminator(td["observation"], self._d_pair(td)).clamp(EPS, 1 - EPS)
        if self.config.disc.reward == "gail":
            return -torch.log(1 - d)
        return torch.log(d) - torch.log(1 - d)

    # ------------------------------------------------------------------ one update
    def update(self, train_actor: bool = True) -> dict[str, float]:
        """One D step (every `disc.updates_every`), one SAC step with the BC term; with
        `train_actor=False` the policy and its std stay as they are."""
        batch = self.replay.sample()
        rows = torch.randint(len(self.expert), (len(batch),))
        expert = self.expert[rows]
        stats: dict[str, float] = {}
        if (
            self.config.reward_source == "discriminator"
            and self.updates % self.config.disc.updates_every == 0
        ):
            stats.update(self._update_discriminator(expert, batch))
        batch["next", "reward"] = self.reward(batch)
        losses = self.sac_loss(batch)
        bc_loss = self._bc_loss(expert)
        # TD3+BC's normalisation: the SAC term at magnitude ~1 whatever the Q scale.
        sac_term = losses["loss_actor"] / losses["loss_actor"].detach().abs().clamp(min=1.0)
        actor_loss = sac_term + self.config.learner.bc_weight * bc_loss
        self.actor_optim.zero_grad()
        self.critic_optim.zero_grad()
        self.alpha_optim.zero_grad()
        (actor_loss + losses["loss_qvalue"] + losses["loss_alpha"]).backward()
        if train_actor:
            self.actor_optim.step()
            self.alpha_optim.step()
        self.critic_optim.step()
        self.target_update.step()
        self.updates += 1
        stats.update(
            critic_loss=float(losses["loss_qvalue"].detach()),
            actor_loss=float(losses["loss_actor"].detach()),
            bc_loss=float(bc_loss.detach()),
            alpha=float(losses["alpha"].detach()),
            reward=float(batch["next", "reward"].mean()),
            exploration_std=float(self.head.log_std.detach().exp().mean()),
        )
        return stats

    def _update_discriminator(self, expert: TensorDict, policy: TensorDict) -> dict[str, float]:
        pairs = TensorDict(
            {
                "observation": expert["observation"],
                "action": self._d_pair(expert),
                "collector_observation": policy["observation"],
                "collector_action": self._d_pair(policy),
            },
            [len(expert)],
        )
        loss = self.gail_loss(pairs)
        self.disc_optim.zero_grad()
        loss["loss"].backward()
        self.disc_optim.step()
        with torch.no_grad():
            on_expert = self.discriminator(expert["observation"], self._d_pair(expert))
            on_policy = self.discriminator(policy["observation"], self._d_pair(policy))
        return {
            "disc_loss": float(loss["loss"].detach()),
            "disc_accuracy_expert": float((on_expert > 0.5).float().mean()),
            "disc_accuracy_policy": float((on_policy < 0.5).float().mean()),
        }

    def _bc_loss(self, expert: TensorDict) -> Tensor:
        """Mean squared error of the deterministic action to the demo's, on real states."""
        real = expert["observation"][:, -1] == 0
        if self.config.learner.bc_weight == 0 or not bool(real.any()):
            return torch.zeros(())
        predicted = torch.tanh(self.policy.action_mean(expert["features"][real]))
        return ((predicted - expert["action"][real]) ** 2).mean()
