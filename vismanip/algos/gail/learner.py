"""The discriminator and the off-policy learner GAIL trains between rollout batches.

From torchrl (well kept, and it fits a rollout loop of our own): `GAILLoss` (the
discriminator's binary cross-entropy with the gradient penalty on expert/policy
interpolates), `SACLoss` (twin-Q soft actor-critic with a learned temperature), `IQLLoss`
(implicit Q-learning's expectile value, its Q and advantage-weighted actor), `SoftUpdate`
(target networks) and `ReplayBuffer`. Ours, because no library has them in this shape:
the actor that wraps the BC policy's trunk and head (its encoder frozen, or with
`learner.end_to_end` trained from frames), DAC's absorbing states, the reward from D, and
the BC term that keeps the actor near the demos (ROT).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import Tensor, nn

from vismanip.algos.gail.configuration import DiscriminatorConfig, GailConfig
from vismanip.algos.gail.rollouts import OBJECT_AXES_COLUMNS, RELATIVE_STATE_COLUMNS
from vismanip.envs.actions import ACTION_DIM
from vismanip.envs.rendering import ensure_gl_backend
from vismanip.errors import VismanipError
from vismanip.policies import ImagePolicy
from vismanip.policies.modeling_image_policy import ImageTransform
from vismanip.sim2real.augmentation import AugmentationConfig, kornia_pipeline

# torchrl imports mujoco, and mujoco binds its GL backend when first imported: choose one
# that renders here before that (MUJOCO_GL, if set, wins), or every env built later in
# this process fails. GailRun.run chooses the config's backend before importing us.
ensure_gl_backend()

from torchrl.data import LazyTensorStorage, ReplayBuffer  # noqa: E402
from torchrl.modules import (  # noqa: E402
    IndependentNormal,
    ProbabilisticActor,
    TanhNormal,
    ValueOperator,
)
from torchrl.objectives import (  # noqa: E402
    ClipPPOLoss,
    GAILLoss,
    IQLLoss,
    SACLoss,
    SoftUpdate,
    ValueEstimators,
)
from torchrl.objectives.value import GAE  # noqa: E402

# torchrl logs an INFO line per buffer it allocates: keep the user's console for progress.
logging.getLogger("torchrl").setLevel(logging.WARNING)

EPS = 1e-6
NO_ENTROPY = 1e-8  # SAC's temperature with `learner.entropy=false`


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for inputs, outputs in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(inputs, outputs), nn.ReLU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def discriminator_columns(disc: DiscriminatorConfig, observation_dim: int) -> list[int]:
    """The columns of (observation, absorbing indicator) a D on the state reads: all of
    them, or with `disc.relative` only what does not place the gripper in the world, and
    without `disc.object_orientation` not the object's orientation."""
    columns = (
        [*RELATIVE_STATE_COLUMNS, observation_dim]
        if disc.relative
        else list(range(observation_dim + 1))
    )
    if not disc.object_orientation:
        columns = [column for column in columns if column not in OBJECT_AXES_COLUMNS]
    return columns


def discriminator_reward(d: Tensor, kind: str) -> Tensor:
    """The reward from D's probability that a row is the expert's: "gail" -log(1 - D), or
    "airl" log D - log(1 - D)."""
    d = d.clamp(EPS, 1 - EPS)
    if kind == "gail":
        return -torch.log(1 - d)
    return torch.log(d) - torch.log(1 - d)


class PairNet(nn.Module):
    """An MLP over two concatenated inputs: Q(s, a), or D(s, a) / D(s, s') with a sigmoid
    (D(s) is the pair with a zero-width second input)."""

    def __init__(self, first: int, second: int, hidden: list[int], probability: bool) -> None:
        super().__init__()
        self.net = mlp([first + second, *hidden, 1])
        self.probability = probability

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        out = self.net(torch.cat([first, second], dim=-1))
        return torch.sigmoid(out) if self.probability else out


class FrameDiscriminator(nn.Module):
    """D(frames, second) for `disc.input=image`: a small strided CNN over D's stacked
    camera frames (float in [0, 1]), its output beside the second input (the absorbing
    indicator, plus the action with D(s, a)), then an MLP and (unless D's loss reads
    logits, `disc.logits`) a sigmoid. Ours: a 3-layer CNN of the size DrQ's encoder uses;
    no library ships a discriminator for this pair."""

    def __init__(
        self, channels: int, size: int, second: int, hidden: list[int], probability: bool
    ) -> None:
        super().__init__()
        self.frame_shape = (channels, size, size)
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 32, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, channels, size, size)).shape[-1]
        self.head = PairNet(flat, second, hidden, probability)

    def forward(self, frames: Tensor, second: Tensor) -> Tensor:
        """`frames` flat, (B, C * S * S): torchrl's gradient penalty concatenates the
        gradients of both inputs along their last dimension."""
        return self.head(self.conv(frames.view(-1, *self.frame_shape)), second)


class GaussianHead(nn.Module):
    """The BC policy's trunk and head as a Gaussian before the tanh: mean from the policy,
    one learned log-std per action dimension (exploration exists only in training).

    Only the `steered` dimensions (`GailConfig.steered_dims`: those the replay's actions
    vary along) pass the RL losses' gradient back to the policy: the critic never saw the
    others vary, so its gradient there is extrapolation (run I grew its roll commands 7x
    that way). The BC term (which calls the policy directly) still trains every dimension.
    """

    steered: Tensor

    def __init__(self, policy: ImagePolicy, init_std: float, steered: list[int]) -> None:
        super().__init__()
        self.policy = policy
        self.log_std = nn.Parameter(torch.full((ACTION_DIM,), math.log(init_std)))
        mask = torch.zeros(ACTION_DIM, dtype=torch.bool)
        mask[steered] = True
        self.register_buffer("steered", mask, persistent=False)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        mean = self.policy.action_mean(features)
        mean = torch.where(self.steered, mean, mean.detach())
        return mean, self.log_std.clamp(-5.0, 1.0).exp().expand_as(mean)


class IgnoringExtraInputs(nn.Module):
    """`module(first)` called as `module(first, *ignored)`."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, first: Tensor, *ignored: Tensor) -> tuple[Tensor, Tensor]:
        return self.module(first)


class AdversarialLearner(nn.Module):
    """What both learners share: the discriminator and its reward, the actor around the BC
    policy, and the BC term. Subclasses add the RL part (`update`)."""

    def __init__(
        self,
        policy: ImagePolicy,
        observation_dim: int,
        expert: TensorDict,
        config: GailConfig,
        steered: list[int] | None = None,
        image_transform: ImageTransform | None = None,
    ) -> None:
        """`steered`: the action dimensions the RL term may change (default: the explored
        `learner.noise_dims`). `image_transform`: the augmentation of the policy's images
        in steps that read them (`learner.end_to_end`)."""
        super().__init__()
        self.config = config
        self.policy = policy
        self.image_transform = image_transform
        for parameter in [*policy.encoders.parameters()]:
            # the encoder stays as BC trained it, unless the whole policy learns from frames
            parameter.requires_grad_(config.learner.end_to_end.steps > 0)
        # What the critics read: the observation plus the absorbing indicator.
        self.input_dim = observation_dim + 1
        self.d_columns = torch.as_tensor(discriminator_columns(config.disc, observation_dim))
        d_dim = len(self.d_columns)
        second = {"state_action": ACTION_DIM, "state_next": d_dim, "state": 0}[config.disc.pairs]
        self.discriminator: nn.Module
        self.frame_shift: nn.Module | None = None
        if config.disc.input == "image":
            size = config.disc.image_size
            channels = 3 * len(policy.image_keys)
            self.frame_shape = (channels, size, size)
            self.discriminator = FrameDiscriminator(
                channels, size, 1 + second, config.disc.hidden, not config.disc.logits
            )
            if config.disc.image_shift > 0:  # the same augmentation on both sources
                shift = AugmentationConfig(shift_pad=config.disc.image_shift)
                self.frame_shift = kornia_pipeline(shift, size)
        else:
            self.discriminator = PairNet(d_dim, second, config.disc.hidden, not config.disc.logits)
        self.gail_loss = GAILLoss(
            TensorDictModule(self.discriminator, ["observation", "action"], ["d_logits"]),
            use_grad_penalty=config.disc.grad_penalty > 0,
            gp_lambda=config.disc.grad_penalty,
        )
        if config.disc.logits:  # (GAILLoss applies its loss_function to D's raw output)
            self.gail_loss.loss_function = nn.BCEWithLogitsLoss(reduction="none")
        steered = config.learner.noise_dims if steered is None else steered
        self.head = GaussianHead(policy, config.learner.init_std, steered)
        self.actor_parameters = [
            *policy.trunk.parameters(),
            *policy.head.parameters(),
            self.head.log_std,
        ]
        self.disc_optim = torch.optim.Adam(self.discriminator.parameters(), lr=config.disc.lr)
        # The starting policy's trunk and head, frozen: what `learner.anchor_weight` holds
        # the actor near on the replay's states (saved with the learner, so a resumed run
        # keeps its own start).
        self.anchor: nn.Sequential | None = None
        if config.learner.anchor_weight > 0:
            self.anchor = copy.deepcopy(nn.Sequential(policy.trunk, policy.head))
            self.anchor.requires_grad_(False)
        self.expert = expert
        self.updates = 0

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer by attribute name (what a resumed run restores)."""
        return {
            name: value
            for name, value in vars(self).items()
            if isinstance(value, torch.optim.Optimizer)
        }

    def make_actor(
        self, also_reads: tuple[str, ...] = (), squashed: bool = True
    ) -> ProbabilisticActor:
        """The stochastic actor torchrl's losses take: a tanh-squashed Gaussian around the
        policy's (pre-tanh) action, reading the frozen encoder's output ("features"); with
        `squashed=False` the Gaussian of the draw before the tanh (`PpoGailLearner`).
        `also_reads`: keys the actor declares but ignores (`IqlGailLearner`)."""
        head: nn.Module = IgnoringExtraInputs(self.head) if also_reads else self.head
        return ProbabilisticActor(
            TensorDictModule(head, ["features", *also_reads], ["loc", "scale"]),
            in_keys=["loc", "scale"],
            distribution_class=TanhNormal if squashed else IndependentNormal,
        )

    def _d_state(self, td: TensorDict) -> Tensor:
        """D's first input: the observation's columns D reads, or D's frames in [0, 1]."""
        if self.config.disc.input == "image":
            return td["frames"].flatten(1).float() / 255.0
        return td["observation"][..., self.d_columns]

    def _d_pair(self, td: TensorDict) -> Tensor:
        """D's second input: the action, the next state, or nothing (zero width); a D on
        frames also reads the absorbing indicator here (a black frame is not one)."""
        pairs = self.config.disc.pairs
        if pairs == "state_action":
            pair = td["action"]
        elif pairs == "state_next":
            pair = td["next", "observation"][..., self.d_columns]
        else:
            pair = td["observation"][..., :0]
        if self.config.disc.input == "image":
            pair = torch.cat([td["observation"][..., -1:], pair], dim=-1)
        return pair

    @torch.no_grad()
    def reward(self, td: TensorDict) -> Tensor:
        """The learner's reward for a batch: from D, or the task's sparse success reward."""
        if self.config.reward_source == "success":
            return td["task_reward"]
        return discriminator_reward(
            self._probability(self._d_state(td), self._d_pair(td)), self.config.disc.reward
        )

    def _probability(self, state: Tensor, pair: Tensor) -> Tensor:
        """D's probability that these rows are the expert's (D outputs a logit with
        `disc.logits`, else the probability itself)."""
        out = self.discriminator(state, pair)
        return torch.sigmoid(out) if self.config.disc.logits else out

    def _update_discriminator(self, expert: TensorDict, policy: TensorDict) -> dict[str, float]:
        """One D step on (the first `disc.batch_size` of) these expert and policy rows."""
        rows = self.config.disc.batch_size or len(expert)
        expert, policy = expert[:rows], policy[:rows]
        expert_state, policy_state = self._d_state(expert), self._d_state(policy)
        if self.frame_shift is not None:
            expert_state, policy_state = self._shift(expert_state), self._shift(policy_state)
        pairs = TensorDict(
            {
                "observation": expert_state,
                "action": self._d_pair(expert),
                "collector_observation": policy_state,
                "collector_action": self._d_pair(policy),
            },
            [len(expert)],
        )
        loss = self.gail_loss(pairs)
        self.disc_optim.zero_grad()
        loss["loss"].backward()
        stop_if_not_finite(loss["loss"], [self.disc_optim], "discriminator", self.updates)
        self.disc_optim.step()
        with torch.no_grad():
            on_expert = self._probability(expert_state, self._d_pair(expert))
            on_policy = self._probability(policy_state, self._d_pair(policy))
        if not self.config.disc.logits:  # (a loss on logits keeps its gradient there)
            stop_if_saturated(torch.cat([on_expert, on_policy]), self.updates)
        return {
            "disc_loss": float(loss["loss"].detach()),
            "disc_accuracy_expert": float((on_expert > 0.5).float().mean()),
            "disc_accuracy_policy": float((on_policy < 0.5).float().mean()),
        }

    @torch.no_grad()
    def _shift(self, flat_frames: Tensor) -> Tensor:
        """D's frames, each randomly shifted (`disc.image_shift`), flat again."""
        assert self.frame_shift is not None
        return self.frame_shift(flat_frames.view(-1, *self.frame_shape)).flatten(1)

    def _bc_loss(self, expert: TensorDict) -> tuple[Tensor, dict[str, float]]:
        """Mean squared error of the deterministic action to the demo's, on real states;
        with `learner.bc_q_filter`, counted only on the states where the critic values the
        demo's action above the policy's own (ROT's Q-filter), and the share kept logged."""
        real = expert["observation"][:, -1] == 0
        if self.config.learner.bc_weight == 0 or not bool(real.any()):
            return torch.zeros(()), {}
        demos = expert[real]
        return self._bc_term(demos, torch.tanh(self.policy.action_mean(demos["features"])))

    def _anchor_loss(self, replay: TensorDict) -> Tensor:
        """Mean squared error of the deterministic action to the starting policy's on the
        replay's real states (`learner.anchor_weight`); 0 when off."""
        real = replay["observation"][:, -1] == 0
        if self.anchor is None or not bool(real.any()):
            return torch.zeros(())
        features = replay["features"][real]
        with torch.no_grad():
            start = torch.tanh(self.anchor(features))
        return ((torch.tanh(self.policy.action_mean(features)) - start) ** 2).mean()

    def _bc_term(self, demos: TensorDict, predicted: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The BC term from `predicted`, the deterministic action on these real demo
        states (from cached features, or through the encoders in `update_end_to_end`)."""
        errors = ((predicted - demos["action"]) ** 2).mean(-1)
        keep = self._bc_filter(demos, predicted.detach())
        if keep is None:
            return errors.mean(), {}
        return (errors * keep).sum() / len(errors), {"bc_q_filter_kept": float(keep.float().mean())}

    def _anchor_stats(self, anchor_loss: Tensor) -> dict[str, float]:
        """The anchor term's value for the logs, when it is on."""
        return {"anchor_loss": float(anchor_loss.detach())} if self.anchor is not None else {}

    def _bc_filter(self, demos: TensorDict, predicted: Tensor) -> Tensor | None:
        """The demo rows the BC term counts on; None: all of them. Only learners with a
        critic of actions filter (`learner.bc_q_filter`, refused for PPO by the config)."""
        return None


def optimized_parameters(optimizers: Sequence[torch.optim.Optimizer]) -> list[Tensor]:
    return [
        p for optimizer in optimizers for group in optimizer.param_groups for p in group["params"]
    ]


def stop_if_not_finite(
    loss: Tensor, optimizers: Sequence[torch.optim.Optimizer], what: str, update: int
) -> None:
    """Between backward and the optimizers' steps: a loss or gradient that is not finite
    stops the run in one line before any weight takes it, so the run folder's learner.pt
    and last.ckpt keep the last whole iteration (the PPO row once saved NaN weights)."""
    finite = torch.isfinite(loss).all()
    for parameter in optimized_parameters(optimizers):
        if parameter.grad is not None:
            finite &= torch.isfinite(parameter.grad).all()
    if bool(finite):  # (one synchronisation per update, not one per tensor)
        return
    raise VismanipError(
        f"GAIL update {update}: the {what} loss ({float(loss.detach().sum()):.3g}) or its "
        "gradient is not finite; stopped before the weights took it (learner.pt and last.ckpt "
        "keep the last whole iteration)"
    )


def stop_if_saturated(outputs: Tensor, update: int) -> None:
    """A D whose sigmoid is exactly 0 or 1 on every row has no gradient left (the sigmoid's
    slope is 0 there and BCE's log is clamped) and never recovers: run IMG's D on frames
    went there at 13k env steps and would have spent the rest of its budget on a constant
    reward. Stop in one line instead."""
    for value in (0.0, 1.0):
        if bool((outputs == value).all()):
            raise VismanipError(
                f"GAIL update {update}: D's output is exactly {value:g} on every row, so its "
                "loss has no gradient left (a dead discriminator); stopped (learner.pt and "
                "last.ckpt keep the last whole iteration; disc.logits=true trains D on its "
                "logit, which cannot saturate)"
            )


def effective_sample_share(weights: Tensor) -> float:
    """How many of these transitions a weighted regression really follows: Kish's effective
    sample size as a fraction of the rows. Near 1 it is plain regression onto them, near 0
    a few noisy critic values decide."""
    return float(weights.sum() ** 2 / (weights**2).sum() / len(weights))


def iql_weights(advantage: Tensor, temperature: float, normalize: bool) -> Tensor:
    """IQL's weights exp(temperature * advantage), clipped at 100; with `normalize` the
    advantages are first divided by their std over the batch (`iql.normalize_advantage`)."""
    if normalize:
        advantage = advantage / advantage.std().clamp(min=1e-6)
    return torch.exp(temperature * advantage).clamp(max=100.0)


def actor_term(loss_actor: Tensor, own: int) -> Tensor:
    """SAC's actor loss on the policy's own transitions (the first `own` of the batch),
    scaled to magnitude ~1 there as in TD3+BC (Fujimoto & Gu, 2021), so `bc_weight` means
    the same whatever the rewards' scale.

    Only the policy's rows count: with demos in the batch (`demo_fraction`) their values
    reach hundreds (the absorbing goal state's reward, forever), and scaling by them
    shrank the gradient where the policy actually is to almost nothing; on the demos'
    states the BC term teaches the actor.
    """
    mine = loss_actor[:own]
    return mine.mean() / mine.detach().abs().mean().clamp(min=1.0)


class GailLearner(AdversarialLearner):
    """DAC-style: discriminator + SAC on the policy's head + BC term, off-policy from a
    replay buffer; `update()` is one step of each."""

    def __init__(
        self,
        policy: ImagePolicy,
        observation_dim: int,
        expert: TensorDict,
        config: GailConfig,
        steered: list[int] | None = None,
        image_transform: ImageTransform | None = None,
    ) -> None:
        super().__init__(policy, observation_dim, expert, config, steered, image_transform)
        learner = config.learner
        self._build_losses(config)
        self.actor_optim = torch.optim.Adam(self.actor_parameters, lr=learner.actor_lr)
        self.replay = ReplayBuffer(
            storage=LazyTensorStorage(learner.replay_size), batch_size=learner.batch_size
        )

    def _critic(self) -> ValueOperator:
        return ValueOperator(
            PairNet(self.input_dim, ACTION_DIM, self.config.learner.critic_hidden, False),
            in_keys=["observation", "action"],
        )

    def _build_losses(self, config: GailConfig) -> None:
        critic = self._critic()
        self.sac_loss = SACLoss(
            self.make_actor(),
            critic,
            num_qvalue_nets=2,
            target_entropy=-ACTION_DIM,
            # log(alpha) must stay finite: "no entropy bonus" is a fixed, negligible alpha.
            alpha_init=config.learner.alpha_init if config.learner.entropy else NO_ENTROPY,
            fixed_alpha=not config.learner.entropy,
            reduction="none",  # per transition: the actor's term uses the policy's own rows
            scalar_output_mode="exclude",  # (its entropy, a scalar; we log alpha instead)
        )
        self.sac_loss.make_value_estimator(ValueEstimators.TD0, gamma=config.learner.gamma)
        # SACLoss registers its target-entropy buffer on first use; make it exist now, so
        # that a resumed run's state_dict has the same keys as a fresh one.
        _ = self.sac_loss.target_entropy
        self.target_update = SoftUpdate(self.sac_loss, tau=config.learner.tau)
        self.critic_optim = torch.optim.Adam(
            self.sac_loss.qvalue_network_params.values(True, True), lr=config.learner.critic_lr
        )
        self.alpha_optim = torch.optim.Adam([self.sac_loss.log_alpha], lr=config.learner.critic_lr)

    def _q_loss(self) -> SACLoss | IQLLoss:
        """The torchrl loss that holds the twin critics and their targets."""
        return self.sac_loss

    def _bc_filter(self, demos: TensorDict, predicted: Tensor) -> Tensor | None:
        """ROT's Q-filter: the rows where the demo's action beats the policy's own."""
        if not self.config.learner.bc_q_filter:
            return None
        observation = demos["observation"]
        return self.min_target_q(observation, demos["action"]) > self.min_target_q(
            observation, predicted
        )

    @torch.no_grad()
    def min_target_q(self, observation: Tensor, action: Tensor) -> Tensor:
        """min over the twin target critics of Q(s, a), per row."""
        loss = self._q_loss()
        pairs = TensorDict({"observation": observation, "action": action}, [len(action)])
        values = []
        params = loss.target_qvalue_network_params
        for index in range(params.shape[0]):
            with params[index].to_module(loss.qvalue_network):
                values.append(loss.qvalue_network(pairs.clone())["state_action_value"])
        return torch.stack(values).min(0).values.squeeze(-1)

    # ------------------------------------------------------------------ data
    def add(self, transitions: TensorDict) -> None:
        self.replay.extend(transitions)

    def _expert_for_critic(self, expert: TensorDict) -> TensorDict:
        """Demo transitions in the replay's layout (the keys SAC reads)."""
        keys = self.replay[:1].keys(True, True)
        return expert.select(*keys).clone()

    def _sample(self) -> tuple[TensorDict, TensorDict, int, dict[str, float]]:
        """One D step (every `disc.updates_every`) and the learner's batch, rewarded by D:
        the replay's transitions first (`own` of them), then `demo_fraction` demo ones;
        plus as many expert transitions for the BC term."""
        batch = self.replay.sample()
        rows = torch.randint(len(self.expert), (len(batch),))
        expert = self.expert[rows]
        stats: dict[str, float] = {}
        if (
            self.config.reward_source == "discriminator"
            and self.updates % self.config.disc.updates_every == 0
        ):
            stats.update(self._update_discriminator(expert, batch))
        demos = round(self.config.learner.demo_fraction * len(batch))
        if demos:  # RLPD's symmetric sampling: the critic also learns on the demos' path
            batch = torch.cat([batch[demos:], self._expert_for_critic(expert[:demos])])
        batch["next", "reward"] = self.reward(batch)
        return batch, expert, len(batch) - demos, stats

    def _step(
        self, loss: Tensor, train_actor: bool, actor_optimizers: list[torch.optim.Optimizer]
    ) -> None:
        """One backward pass through the actor's and the critic's losses: the critic and
        its targets always step, the actor's optimizers only once the actor trains."""
        optimizers = [*actor_optimizers, self.critic_optim]
        for optimizer in optimizers:
            optimizer.zero_grad()
        loss.backward()
        stop_if_not_finite(loss, optimizers, "actor and critic", self.updates)
        if train_actor:
            for optimizer in actor_optimizers:
                optimizer.step()
        self.critic_optim.step()
        self.target_update.step()
        self.updates += 1

    # ------------------------------------------------------------------ one update
    def update(self, train_actor: bool = True) -> dict[str, float]:
        """One D step (every `disc.updates_every`), one SAC step with the BC term; with
        `train_actor=False` the policy and its std stay as they are."""
        batch, expert, own, stats = self._sample()
        losses = self.sac_loss(batch)
        bc_loss, bc_stats = self._bc_loss(expert)
        anchor_loss = self._anchor_loss(batch[:own])
        learner = self.config.learner
        actor_loss = (
            learner.rl_weight * actor_term(losses["loss_actor"], own)
            + learner.bc_weight * bc_loss
            + learner.anchor_weight * anchor_loss
        )
        critic_loss = losses["loss_qvalue"].mean()
        alpha_loss = losses["loss_alpha"][:own].mean()  # entropy where the policy acts
        self._step(
            actor_loss + critic_loss + alpha_loss, train_actor, [self.actor_optim, self.alpha_optim]
        )
        stats.update(
            **bc_stats,
            critic_loss=float(critic_loss.detach()),
            actor_loss=float(losses["loss_actor"][:own].detach().mean()),
            bc_loss=float(bc_loss.detach()),
            **self._anchor_stats(anchor_loss),
            alpha=float(self.sac_loss.log_alpha.detach().exp()),
            reward=float(batch["next", "reward"].mean()),
            exploration_std=float(self.head.log_std.detach().exp().mean()),
        )
        return stats


class IqlGailLearner(GailLearner):
    """DAC-style like `GailLearner`, with IQL's losses (Kostrikov et al., ICLR 2022) in
    place of SAC's: Q(s, a) learns from V(s') and V(s) is an upper expectile of Q over the
    replay's own actions, so no loss ever evaluates Q at an action the policy proposes.
    The actor is advantage-weighted regression onto actions that were taken (the
    replay's, as `record_action` kept them, and the demos'), weights
    exp(temperature * (Q - V)).
    From torchrl: IQLLoss's Q and V losses and networks; ours: the actor's term (below).

    Why: with SAC (and with its entropy off) the actor climbed the critic to actions it
    had never seen (run M: the policy's Q went from -8 to +9 within 4,000 updates while
    every exploring episode began to fail), as offline-to-online RL from a BC start is
    known to (AWAC, Nair et al. 2020). Regression onto actions taken cannot leave them.
    """

    def _build_losses(self, config: GailConfig) -> None:
        iql = config.learner.iql
        value = ValueOperator(mlp([self.input_dim, *iql.value_hidden, 1]), in_keys=["observation"])
        self.iql_loss = IQLLoss(
            # IQLLoss's Q loss keeps only the actor's input keys of each batch, and our
            # critics read "observation" (the state), the actor "features" (the images').
            self.make_actor(also_reads=("observation",)),
            self._critic(),
            value,
            num_qvalue_nets=2,
            temperature=iql.temperature,
            expectile=iql.expectile,
            reduction="none",
            scalar_output_mode="exclude",
        )
        self.iql_loss.make_value_estimator(ValueEstimators.TD0, gamma=config.learner.gamma)
        self.target_update = SoftUpdate(self.iql_loss, tau=config.learner.tau)
        self.critic_optim = torch.optim.Adam(
            [
                *self.iql_loss.qvalue_network_params.values(True, True),
                *self.iql_loss.value_network_params.values(True, True),
            ],
            lr=config.learner.critic_lr,
        )
        end_to_end = config.learner.end_to_end
        if end_to_end.steps:  # every layer of the policy, camera encoders included
            self.end_to_end_optim = torch.optim.Adam(self.policy.parameters(), lr=end_to_end.lr)

    def _q_loss(self) -> SACLoss | IQLLoss:
        return self.iql_loss

    @torch.no_grad()
    def advantage_weights(self, batch: TensorDict) -> Tensor:
        """exp(temperature * (min_i Q_i(s, a) - V(s))), clipped at 100, per transition:
        IQLLoss's own weighting, from its (target) networks; with
        `iql.normalize_advantage` Q - V is first divided by its std over the batch."""
        loss, pairs = self.iql_loss, batch.select("observation", "action")
        q = self.min_target_q(batch["observation"], batch["action"])
        with loss.value_network_params.to_module(loss.value_network):
            v = loss.value_network(pairs.clone())["state_value"].squeeze(-1)
        iql = self.config.learner.iql
        return iql_weights(q - v, iql.temperature, iql.normalize_advantage)

    def update(self, train_actor: bool = True) -> dict[str, float]:
        """One D step (every `disc.updates_every`), IQL's Q and V steps, and the actor's:
        advantage-weighted squared error to the actions taken, plus the BC term.

        The actor's term is ours, not IQLLoss's: its log-likelihood of a tanh-Gaussian is
        dominated by the clipped actions at +-1 (atanh -> infinity; run N's actor loss
        was in the thousands and its BC error tripled at the first update), while the
        weighted squared error on the deterministic action is the BC term's own scale.
        """
        batch, expert, own, stats = self._sample()
        critic_loss = (
            self.iql_loss.qvalue_loss(batch)[0].mean() + self.iql_loss.value_loss(batch)[0].mean()
        )
        if self.config.learner.end_to_end.steps:  # the actor learns in `update_end_to_end`
            self._step(critic_loss, False, [])
            stats.update(
                critic_loss=float(critic_loss.detach()),
                reward=float(batch["next", "reward"].mean()),
            )
            return stats
        weights = self.advantage_weights(batch)
        own_weights = weights[:own]
        predicted = torch.tanh(self.head(batch["features"])[0])
        errors = ((predicted - batch["action"]) ** 2).mean(-1)
        rl_loss = (weights * errors).sum() / weights.sum()
        bc_loss, bc_stats = self._bc_loss(expert)
        anchor_loss = self._anchor_loss(batch[:own])
        learner = self.config.learner
        actor_loss = (
            learner.rl_weight * rl_loss
            + learner.bc_weight * bc_loss
            + learner.anchor_weight * anchor_loss
        )
        self._step(actor_loss + critic_loss, train_actor, [self.actor_optim])
        stats.update(
            **bc_stats,
            critic_loss=float(critic_loss.detach()),
            actor_loss=float(rl_loss.detach()),
            bc_loss=float(bc_loss.detach()),
            **self._anchor_stats(anchor_loss),
            advantage_weight_max=float(own_weights.max()),
            advantage_weight_ess=effective_sample_share(own_weights),
            reward=float(batch["next", "reward"].mean()),
            exploration_std=float(self.head.log_std.detach().exp().mean()),
        )
        return stats

    def update_end_to_end(self) -> dict[str, float]:
        """One step of the whole policy, camera encoders included (`learner.end_to_end`):
        the advantage-weighted regression of `update` through the encoders, on
        `end_to_end.batch_size` replay states and as many demo states, plus the BC term on
        the demo states; the images augmented as the BC checkpoint was trained.

        Ours: IQL's actor objective (as in `update`) on a batch that runs the encoders;
        absorbing states are left out (the policy never sees one).
        """
        rows = self.config.learner.end_to_end.batch_size
        replay = self.replay.sample(rows)
        expert = self.expert[torch.randint(len(self.expert), (rows,))]
        replay, expert = (part[part["observation"][:, -1] == 0] for part in (replay, expert))
        keys = ("observation", "action", "policy_obs")
        batch = cast(TensorDict, torch.cat([replay.select(*keys), expert.select(*keys)]))
        weights = self.advantage_weights(batch)
        images = batch["policy_obs"]
        mean = self.policy.action_mean(
            self.policy.encode({key: images[key] for key in images.keys()}, self.image_transform)
        )
        # as in `update`: the RL term steers only the explored dimensions
        steered = torch.tanh(torch.where(self.head.steered, mean, mean.detach()))
        errors = ((steered - batch["action"]) ** 2).mean(-1)
        rl_loss = (weights * errors).sum() / weights.sum()
        bc_loss, bc_stats = self._bc_term(expert, torch.tanh(mean[len(replay) :]))
        learner = self.config.learner
        loss = learner.rl_weight * rl_loss + learner.bc_weight * bc_loss
        self.end_to_end_optim.zero_grad()
        loss.backward()
        stop_if_not_finite(loss, [self.end_to_end_optim], "end-to-end actor", self.updates)
        self.end_to_end_optim.step()
        return {
            **bc_stats,
            "actor_loss": float(rl_loss.detach()),
            "bc_loss": float(bc_loss.detach()),
            "advantage_weight_ess": effective_sample_share(weights[: len(replay)]),
        }


class PpoGailLearner(AdversarialLearner):
    """The original GAIL: discriminator + PPO (clipped ratio, GAE) + BC term, on-policy.

    Episodes end at the goal as terminal steps (no absorbing states: on-policy GAE needs no
    bootstrapping past the goal) and at the horizon as truncations, which bootstrap.
    The ratio is taken on each step's draw before the tanh ("pre_tanh_action"), under the
    Gaussian the policy drew it from: the tanh's Jacobian is the same under the old and
    the new policy and cancels. Taken back through atanh of the stored action instead,
    a draw beyond |u| ~ 7 (float32 rounds its tanh to +-1) lands at the clamp's 7.25,
    many stds from where it was drawn, and a tiny move of the mean changes its
    log-probability a lot (`scripts/ppo_saturation.py`).
    """

    def __init__(
        self,
        policy: ImagePolicy,
        observation_dim: int,
        expert: TensorDict,
        config: GailConfig,
        steered: list[int] | None = None,
        image_transform: ImageTransform | None = None,
    ) -> None:
        super().__init__(policy, observation_dim, expert, config, steered, image_transform)
        ppo, learner = config.learner.ppo, config.learner
        value = ValueOperator(mlp([self.input_dim, *ppo.value_hidden, 1]), in_keys=["observation"])
        self.ppo_loss = ClipPPOLoss(
            self.make_actor(squashed=False),
            value,
            clip_epsilon=ppo.clip,
            entropy_bonus=ppo.entropy_coef > 0,
            entropy_coeff=ppo.entropy_coef,
            normalize_advantage=True,
            max_importance_ratio=ppo.max_ratio,
        )
        self.ppo_loss.set_keys(action="pre_tanh_action")
        self.gae = GAE(gamma=learner.gamma, lmbda=ppo.lmbda, value_network=value)
        self.actor_optim = torch.optim.Adam(self.actor_parameters, lr=learner.actor_lr)
        self.critic_optim = torch.optim.Adam(value.parameters(), lr=learner.critic_lr)

    @torch.no_grad()
    def prepare(self, batch: TensorDict) -> None:
        """D's rewards, GAE's advantages and the sampling policy's log-probabilities of its
        draws before the tanh, in place."""
        batch["next", "reward"] = self.reward(batch)
        self.gae(batch)
        dist = self.ppo_loss.actor_network.get_dist(batch)
        batch["action_log_prob"] = dist.log_prob(batch["pre_tanh_action"])

    def update_on(self, episodes: TensorDict, train_actor: bool = True) -> dict[str, float]:
        """`ppo.disc_epochs` passes of D steps against the expert, then `ppo.epochs` passes
        of PPO over these episodes."""
        ppo = self.config.learner.ppo
        batch = episodes.clone()
        size = min(ppo.minibatch_size, len(batch))
        totals: dict[str, list[float]] = {}

        def keep(stats: dict[str, float]) -> None:
            for key, value in stats.items():
                totals.setdefault(key, []).append(value)

        if self.config.reward_source == "discriminator":
            for _ in range(ppo.disc_epochs):
                for rows in torch.randperm(len(batch)).split(size):
                    expert = self.expert[torch.randint(len(self.expert), (len(rows),))]
                    keep(self._update_discriminator(expert, batch[rows]))
        self.prepare(batch)
        planned, run, stopped = ppo.epochs * math.ceil(len(batch) / size), 0, False
        for _ in range(ppo.epochs):
            if stopped:
                break
            for rows in torch.randperm(len(batch)).split(size):
                minibatch = batch[rows]
                losses = self.ppo_loss(minibatch)
                # SB3's rule: this iteration has moved the policy far enough
                stopped = bool(ppo.target_kl) and float(losses["kl_approx"]) > 1.5 * ppo.target_kl
                if stopped:
                    break
                run += 1
                expert = self.expert[torch.randint(len(self.expert), (len(rows),))]
                bc_loss, _ = self._bc_loss(expert)
                actor_loss = losses["loss_objective"] + losses.get("loss_entropy", 0.0)
                optimizers = [self.actor_optim, self.critic_optim]
                for optimizer in optimizers:
                    optimizer.zero_grad()
                learner = self.config.learner
                loss = (
                    learner.rl_weight * actor_loss
                    + learner.bc_weight * bc_loss
                    + losses["loss_critic"]
                )
                loss.backward()
                stop_if_not_finite(loss, optimizers, "PPO", self.updates)
                nn.utils.clip_grad_norm_(optimized_parameters(optimizers), ppo.max_grad_norm)
                if train_actor:
                    self.actor_optim.step()
                self.critic_optim.step()
                self.updates += 1
                keep(
                    {
                        "critic_loss": float(losses["loss_critic"].detach()),
                        "actor_loss": float(losses["loss_objective"].detach()),
                        "bc_loss": float(bc_loss.detach()),
                        # how far the updates moved the policy off the one that acted
                        "ppo_clip_fraction": float(losses["clip_fraction"]),
                        "ppo_kl": float(losses["kl_approx"]),
                    }
                )
        stats = {key: float(np.mean(values)) for key, values in totals.items()}
        stats.update(
            reward=float(batch["next", "reward"].mean()),
            exploration_std=float(self.head.log_std.detach().exp().mean()),
            ppo_minibatches_run=run / planned,  # < 1: stopped at `ppo.target_kl`
        )
        return stats
