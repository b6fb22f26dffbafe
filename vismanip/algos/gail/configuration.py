"""Every knob of a GAIL run, documented once."""

from __future__ import annotations

from dataclasses import dataclass, field

from vismanip.envs.actions import ACTION_DIM, GRIPPER_DIM
from vismanip.envs.tasks import PERTURBED_DIMS
from vismanip.errors import VismanipError
from vismanip.rollout.runner import RunnerConfig
from vismanip.sim2real.randomization import RandomizationConfig

CHOICES = {
    "disc.input": ("state", "features", "image"),
    "disc.pairs": ("state_action", "state_next", "state"),
    "disc.reward": ("gail", "airl"),
    "reward_source": ("discriminator", "success"),
    "learner.type": ("sac", "iql", "ppo"),
    "record_action": ("commanded", "noisy", "executed"),
}


@dataclass
class DiscriminatorConfig:
    """D tells expert transitions from the policy's; its output is the reward.

    input: what D (and the critic) read: "state" (the sim's privileged low-dim state:
        gripper and object positions and orientations, object relative to the gripper,
        finger opening; training-time only, as in asymmetric actor-critic), "features" (the policy's
        frozen encoder output: keypoints + proprio, for demos without sim state) or
        "image" (a small CNN on the policy's camera frames, downsampled to `image_size`,
        randomly shifted by up to `image_shift` pixels alike on expert and policy
        batches; for demos without sim state where a D on the frozen features would only
        see what BC learned to look at). With "features" and "image" the critic reads
        the frozen features.
    pairs: "state_action" (D(s, a)), "state_next" (D(s, s'), needs no expert actions) or
        "state" (D(s): rewards being where the expert goes, whatever the exploration noise
        on the actions; D(s, a) can tell noisy policy actions from the expert's smooth
        ones in any state, which rewards nothing the policy can change).
    hidden: MLP widths.
    lr: Adam learning rate.
    grad_penalty: λ of the gradient penalty on expert/policy interpolates (0: off).
    reward: "gail" (-log(1 - D), positive: a survival bonus, kept honest by absorbing
        states) or "airl" (log D - log(1 - D)).
    updates_every: one D update per this many learner updates.
    batch_size: transitions from each source (expert, policy) per D update; 0: the
        learner's `batch_size`. With input "image" an update at 256 costs ~15x one on the
        state (`scripts/bench_gail_update.py`); a smaller batch with `updates_every` keeps
        D from being the limit.
    relative: with input "state", D reads the object's height, the object relative to the
        gripper, the fingers and the orientations, not the gripper's place in the world:
        a D that sees absolute heights rewards climbing without the cube (run D).
    object_orientation: with input "state", whether D reads the object's orientation.
        Off for demos of upright objects used among objects that lie or roll (experiment
        2: every demo state has the object within 1.2 degrees of upright, while 10% of
        GAIL's replay among all objects has it lying, 90 degrees or more, where no action
        earns a reward: a ball has no upright). The critic still reads it.
    image_size, image_shift: with input "image", the frames' size for D (the replay keeps
        them as uint8 at this size: 2 cameras at 42 px are 10.6 kB a step, 2.1 GB per
        200k steps) and the random shift (DrQ's augmentation, Kostrikov et al. 2020) that
        keeps D from telling the two sources apart by a few pixels.
    logits: D's loss from its logit (binary cross-entropy with logits; the gradient
        penalty then acts on the logit) instead of torchrl GAILLoss's default, BCE on D's
        sigmoid: a sigmoid that rounds to exactly 0 or 1 everywhere leaves no gradient, and
        D on frames died that way (run IMG). Off by default: every measured run used the
        sigmoid.
    """

    input: str = "state"
    pairs: str = "state_action"
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    lr: float = 3e-4
    grad_penalty: float = 10.0
    reward: str = "gail"
    updates_every: int = 1
    batch_size: int = 0
    relative: bool = False
    object_orientation: bool = True
    image_size: int = 42
    image_shift: int = 2
    logits: bool = False


@dataclass
class PpoConfig:
    """The on-policy learner of the original GAIL (`learner.type=ppo`), via torchrl's
    ClipPPOLoss and GAE. Each iteration's episodes are used for `epochs` passes in
    minibatches of `minibatch_size`, then dropped.

    clip: PPO's ratio clip; lmbda: GAE's λ; entropy_coef: entropy bonus;
    value_hidden: MLP widths of the value network V(state).
    max_ratio: cap on the new/old probability ratio inside the objective (torchrl's
        `max_importance_ratio`): with a negative advantage the clipped objective does not
        bound the ratio, and a 7-D Gaussian that sharpens around its own draws multiplies
        their density per dimension (the first PPO row's actor loss hit 3e6, then NaN).
    max_grad_norm: the update's gradient norm is clipped to this, as in SB3's and
        CleanRL's PPO.
    disc_epochs: passes of D steps over each iteration's episodes (minibatches of
        `minibatch_size`). With one pass D took ~4 steps per 800 env steps, 50x fewer than
        the off-policy learners' D, and never separated expert from policy (the PPO rows).
    target_kl: stop an iteration's PPO epochs at the first minibatch whose approximate
        KL to the policy that acted exceeds 1.5 x this, before its step (SB3's
        `target_kl` rule); 0: off. PPO3 ran all 4 epochs at a mean KL of 25 nats a sample,
        far outside the trust region the clip assumes.
    """

    epochs: int = 4
    minibatch_size: int = 256
    clip: float = 0.2
    lmbda: float = 0.95
    entropy_coef: float = 0.0
    value_hidden: list[int] = field(default_factory=lambda: [256, 256])
    max_ratio: float = 10.0
    max_grad_norm: float = 0.5
    disc_epochs: int = 10
    target_kl: float = 0.0


@dataclass
class IqlConfig:
    """The off-policy learner `learner.type=iql` (torchrl's IQLLoss): its other knobs
    (batch, rates, replay, demo_fraction, BC term) are the learner's.

    temperature: inverse temperature of the advantage weights exp(temperature * (Q - V))
        (clipped at 100); 0 is plain BC on the replay's and demos' actions.
    expectile: V(s) is this expectile of Q(s, a) over the replay's actions (0.5: their
        mean; towards 1: the best of them).
    value_hidden: MLP widths of V(state).
    normalize_advantage: divide Q - V by its standard deviation over each batch before the
        temperature, so the weights stay as selective while Q's scale grows with D's
        rewards. Why: with AIRL rewards of +-5 the critic's loss grew from 0.1 to 13 over
        60k env steps (experiment 2), and with it the advantages: the weights' effective
        share of the batch fell from 0.99 to 0.1-0.2 at temperature 3, and to 0.18 by 16k
        at temperature 1, so a fixed temperature only delays it. Measured (run E2AN, one
        seed): the share held at 0.10, but best.ckpt scored 21% on novel objects against
        35% without it, hence off by default.
    """

    temperature: float = 3.0
    expectile: float = 0.7
    normalize_advantage: bool = False
    value_hidden: list[int] = field(default_factory=lambda: [256, 256])


@dataclass
class EndToEndConfig:
    """`learner.end_to_end`: train the whole policy, camera encoders included, from the
    frames (with `learner.type=iql` and `disc.input=state`). Off by default: the actor's
    MLP and head learn on the frozen encoder's features, which is cheap (no image is
    touched in an update).

    Why: DAgger's gains in experiments 1 and 2 (83% on `lift_perturbed`, 78% on novel
    objects) came from retraining every layer on the states the learner visits, while
    GAIL's best runs, with the encoder frozen, gained 18 points. With `steps` > 0 the replay
    also keeps the policy's own inputs of each step (the camera images at the policy's
    size and the proprio: 2 cameras at 84 px are 42 kB a step, 3.4 GB per 80k steps, in
    memory and in the run folder's shards) and the actor learns only here: each iteration,
    after the critic's and D's updates, `steps` steps of IQL's advantage-weighted
    regression through the whole network on `batch_size` replay rows plus as many demo
    rows, with the BC term on those demo rows, the images augmented as the BC checkpoint
    was trained (its `augmentation`). One step at batch 64 + 64 costs ~0.7-1.5 s on one
    core here beside the simulators, so 12 steps add ~10-20 s per iteration (~730 env
    steps on `lift_perturbed`).

    steps: full-network steps per iteration (0: encoders frozen).
    batch_size: replay rows per step (as many demo rows join them).
    lr: Adam rate for every layer of the policy in these steps.
    """

    steps: int = 0
    batch_size: int = 64
    lr: float = 3e-4


@dataclass
class LearnerConfig:
    """The RL learner on the policy's head: `type` "sac" (off-policy, DAC-style, the
    default), "iql" (off-policy, DAC-style, implicit Q-learning: the actor regresses onto
    the replay's and the demos' actions weighted by their advantage; knobs in `iql`) or "ppo" (on-policy,
    the original GAIL; its own knobs in `ppo`).

    batch_size: transitions per update (as many expert ones for D and the BC term).
    updates_per_step: gradient updates per collected env step (update-to-data ratio; SAC).
    gamma: discount; tau: target-network soft-update rate (SAC).
    actor_lr, critic_lr: Adam learning rates (the actor is the BC policy's MLP and head).
    critic_hidden: MLP widths of the two Q networks (they read the low-dim state + action).
    init_std: starting exploration std (before the tanh squash); SAC then learns it.
    alpha_init: SAC's starting entropy temperature (then tuned toward -7 nats).
    entropy: SAC's entropy bonus; false fixes the temperature at ~0, so the actor follows
        the critic alone (a deterministic policy gradient, as DDPG-style DrQ-v2 and ROT
        train), exploring with `action_noise`. The bonus on a tanh-squashed Gaussian also
        pulls actions toward 0, away from the saturated ±1 commands a scripted expert's
        BC policy gives (run L's gripper commands shrank from 0.96 to 0.87).
    bc_weight: weight of the BC term (mean squared error to the demo actions) in the
        actor's loss, whose SAC part is scaled to magnitude ~1 as in TD3+BC (Fujimoto &
        Gu, 2021), so the weight means the same whatever the rewards' scale; 0: off.
    bc_q_filter: the BC term counts only on demo states where the critic (min of the
        twin targets) values the demo's action above the policy's own, as ROT filters it
        (after Nair et al. 2018): where the critic has learned something better, BC stops
        holding the policy back. sac and iql only (PPO's critic values states).
    anchor_weight: weight of a term that keeps the deterministic action near the starting
        (BC) policy's on the replay's own states (mean squared error to what the start
        would do there), sac and iql on frozen encoders only; 0: off. The BC term anchors
        the policy on the demos' states only, and in experiment 2 those hold none of the
        novel objects GAIL meets, where nothing else holds what BC did. A KL-to-reference
        term as in RL fine-tuning of a pretrained policy (RLHF keeps a KL to the start),
        on the states the policy visits. Measured in experiment 2 (E2NI, weight 1): it
        kept the policy within ~0.02 of its start's actions and the novel objects at
        11% on 150 episodes against BC's 15%, so it stays off by default.
    rl_weight: weight of SAC's actor term (entropy and value) in the actor's loss; 0
        trains the actor on the BC term alone, with everything else the same: the control
        that says what the RL term does to the policy.
    replay_size: transitions kept from the policy's rollouts (SAC).
    warmup_steps: env steps collected before the first update (SAC).
    actor_start_steps: env steps before the actor changes; until then only D and the
        critic learn, so an untrained critic cannot pull the BC policy away.
    demo_fraction: share of each SAC batch drawn from the demos instead of the replay
        buffer (RLPD's symmetric sampling, Ball et al. 2023: 0.5), so the critic also
        learns values along the expert's path, up to the goal the policy has not reached.
    action_noise: 0 (default): explore with SAC's learned std before the tanh. > 0: add
        Gaussian noise of this std to the action after the tanh, clipped (as DrQ-v2 and
        ROT explore), because before the tanh a saturated BC action (±1) does not move.
    action_noise_schedule: [[env_steps, std], ...]: from each listed env-step count on,
        exploration uses that std instead of `action_noise` (a step schedule, as DrQ-v2
        anneals its exploration). Run V explored with 0.5 to 40k steps, where large held
        noise taught the way back past the cube, then 0.25, where exploring grasps
        succeeded again: `[[40000, 0.25]]` with `action_noise: 0.5`. A resumed run
        follows it too, so a change of noise needs no edited config.
    noise_dims: the action dimensions exploration noise (either kind) is added to. The
        RL term steers these and, with `record_action=executed` in a perturbed task, the
        dimensions the task's own noise moves (`GailConfig.steered_dims`); the others act
        deterministically and learn from the BC term only. [0, 1, 2, 6] leaves the
        rotation commands alone: on Lift, BC from clean demos fails under rotation noise
        of std 0.1 (0/10) but not under position noise (8/10), so noise there only ends
        episodes.
    rotation_noise_scale: `action_noise`'s std on the rotation commands (dimensions 3-5,
        when `noise_dims` has them) is this times the others'. A full rotation command
        turns the gripper 0.5 rad in one step where a full position command moves it
        5 cm, so a std that explores positions (0.5, held 10 steps) would tilt it far past
        anything the task shows; 0.1 explores tilts of the size `lift_perturbed`'s own
        noise makes.
    noise_hold_steps: each exploration draw is held for this many steps (1: a new draw
        every step). Per-step noise of std 0.1 averages out within a few steps and never
        carries the gripper far from where the policy goes; a draw held 10 steps moves it
        several cm (temporally extended exploration, in the spirit of Dabney et al. 2021's
        epsilon-z-greedy): traces of runs R and S showed the policy past the cube in +x,
        still commanding +x (every demo approaches from -x), with no explored way back.
        Run T (0.1 held 10 steps) did not teach it either; run U (0.5 held 10 steps) did,
        heading back on half of its past-the-cube steps: see the README.
    gripper_flip_prob: per-step chance that an exploring episode reverses the gripper
        command (opens a closing gripper, closes an open one) for `gripper_flip_steps`
        steps. robosuite's Panda gripper moves by the command's sign only, so Gaussian
        noise around a saturated close command (+1) never opens it, and after a missed
        grasp the replay never shows the re-open and re-grasp that the clean demos lack
        (run R closed on nothing and drove away). 0: off.
    gripper_flip_steps: how long one reversal lasts (the finger target moves 0.2 of its
        range per step: 10 steps from closed to open).
    end_to_end: the whole policy, encoders included, trained from frames (`EndToEndConfig`).
    demo_augmented_copies: k > 0: the demos' features, the actor's input wherever it
        learns on demo states (the BC term, IQL's regression, the critics' demo half), are
        encoded k times, each from the frames augmented as the BC checkpoint was trained
        (its `augmentation`: DrQ's random shift by default), instead of once from the
        plain frames. BC's head learned on augmented features; the BC term on the plain
        frames' features is many more passes over 600 demos' exact features, which keeps
        the demos' objects and loses the others (experiment 2, E2X: the BC term alone took
        novel objects from 26% to 10%). k x the demos' features in memory. 0: off (every
        measured run).
    policy_average: > 0: evaluations, best.ckpt and last.ckpt hold an exponential moving
        average of the policy's weights (this decay per iteration, torch's `AveragedModel`)
        instead of the latest ones, which still explore. Experiment 2's evaluated novel
        success swung 10% -> 35% -> 12% between evaluations 10k env steps apart (E2NZF3G)
        while the BC loss stayed flat: the average over the last ~1/(1 - decay)
        iterations evaluates where the updates are heading rather than where the last
        few threw the weights, as diffusion_policy and LeRobot evaluate an EMA of theirs.
        Measured there (E2NZF3A, 0.9, E2NZF3G's training): best.ckpt as good (35% novel on
        150 episodes), the fall after the peak softer but there (last.ckpt 25% novel / 70%
        seen against 23% / 62%), so it stays off by default.
    threads: torch threads for the updates. 1 by default: the rollout workers share the
        cores, and oversubscribed threads ran an update 7x slower here (914 vs 125 ms,
        2 threads vs 1, on a loaded 2-core machine).
    """

    type: str = "sac"
    batch_size: int = 256
    updates_per_step: float = 0.25
    gamma: float = 0.99
    tau: float = 0.005
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256])
    init_std: float = 0.3
    alpha_init: float = 0.1
    entropy: bool = True
    bc_weight: float = 1.0
    bc_q_filter: bool = False
    anchor_weight: float = 0.0
    rl_weight: float = 1.0
    replay_size: int = 300_000
    warmup_steps: int = 2_000
    actor_start_steps: int = 10_000
    demo_fraction: float = 0.0
    action_noise: float = 0.0
    action_noise_schedule: list[list[float]] = field(default_factory=list)
    noise_dims: list[int] = field(default_factory=lambda: list(range(ACTION_DIM)))
    rotation_noise_scale: float = 1.0
    noise_hold_steps: int = 1
    gripper_flip_prob: float = 0.0
    gripper_flip_steps: int = 10
    policy_average: float = 0.0
    threads: int = 1
    ppo: PpoConfig = field(default_factory=PpoConfig)
    iql: IqlConfig = field(default_factory=IqlConfig)
    end_to_end: EndToEndConfig = field(default_factory=EndToEndConfig)
    demo_augmented_copies: int = 0


@dataclass
class GailConfig:
    """`vismanip gail --config configs/gail/lift.yaml init=runs/<bc>/best.ckpt key=value`.

    init: the BC checkpoint the policy starts from (its architecture is kept).
    init_lowdim_std_floor, init_lowdim_std_floor_keys: floor init's stored proprio std
        before GAIL starts, as `policy.lowdim_std_floor` / `policy.lowdim_std_floor_keys`
        do in BC training (0: keep init's). For a BC policy trained without it whose
        proprio the demos held almost still: the Lift demos' gripper quaternion tilt
        components have std 0.003-0.024, and flooring them at 0.05 took the experiment-1
        BC from 0% to 28% on lift_perturbed with no training.
    demos: expert demos ("": the dataset `init` was trained on).
    task: where the policy interacts and is evaluated ("": init's task), e.g. lift_perturbed.
    objects, clutter: the scene's object set and distractors (as `collect`); [] and -1
        keep init's.
    randomization: domain randomization of the interaction scenes (as `collect`:
        `randomization=configs/randomization/default.yaml`).
    env_steps: the interaction budget.
    episodes_per_iteration: episodes rolled out with one set of weights.
    workers: simulator processes.
    runner: where they live (`runner.backend=ray runner.address=auto` for a Ray cluster).
    reward_source: "discriminator" (GAIL) or "success" (the sparse task reward: what the
        discriminator adds, measured with the same learner).
    eval_every: env steps between evaluations of the deterministic policy; eval_episodes
        per evaluation; best.ckpt is the most successful (among those the guard admits).
    guard_tasks: tasks the deterministic policy is also evaluated on at each evaluation
        (eval_episodes each, in the same scene), e.g. the clean `lift` beside
        `lift_perturbed`: GAIL improves the task it interacts in and can lose the nominal
        one unnoticed (run WTF2's last.ckpt: +30 points on lift_perturbed, -8 on lift).
    guard_seen: also evaluate in the demos' own scene (their object set and clutter: the
        generalization suite's `seen` split) as a guard, for runs that interact among other
        objects (experiment 2: seen must stay within 5 points of BC while novel rises).
    guard_max_drop: best.ckpt is chosen only among evaluations whose success on every
        guard task is at least the first evaluation's (the initial policy's) minus this.
    overlap_rollouts: with the SAC learner and 2+ workers, collect the next batch (with
        the weights from before this batch's updates) while the learner trains on this one.
    explore_perturbation: [low, high]: each exploring episode draws the strength of the
        task's perturbation (action noise and push rate, times the task's own) uniformly
        from this range. [0, 1] mixes near-clean episodes, where the BC policy still
        reaches the goal so the learner sees successes, with full-strength ones (a
        curriculum without a schedule); evaluations always use the task's own (1).
    record_action: what the replay keeps as each step's action: "commanded" (the
        policy's output, exploration noise included), "executed" (what the simulator
        ran: that plus a perturbed task's noise and pushes) or "noisy" (the commanded
        action plus the task's noise, without the pushes). The task's noise varies every
        dimension, rotation included, where the policy's commands barely move, so the
        critic sees actions it would not see otherwise; but a push replaces the action
        for 4 steps, and an actor that regresses onto executed actions
        (`learner.type=iql`) then imitates pushes: run O declined where run P, the same
        with "commanded", did not. "noisy" keeps the noise as free exploration of the
        rotations (which BC never learned to correct) and leaves the pushes out.
    """

    init: str = ""
    init_lowdim_std_floor: float = 0.0
    init_lowdim_std_floor_keys: list[str] = field(default_factory=list)
    demos: str = ""
    output_dir: str = "runs/gail"
    task: str = ""
    objects: list[str] = field(default_factory=list)
    clutter: int = -1
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    env_steps: int = 200_000
    episodes_per_iteration: int = 4
    workers: int = 2
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    seed: int = 0
    reward_source: str = "discriminator"
    eval_every: int = 10_000
    eval_episodes: int = 20
    guard_tasks: list[str] = field(default_factory=list)
    guard_seen: bool = False
    guard_max_drop: float = 0.05
    overlap_rollouts: bool = True
    explore_perturbation: list[float] = field(default_factory=lambda: [1.0, 1.0])
    record_action: str = "commanded"
    disc: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)

    def check(self) -> None:
        """One line for a value no run could use, before anything is written."""
        values = {
            "disc.input": self.disc.input,
            "disc.pairs": self.disc.pairs,
            "disc.reward": self.disc.reward,
            "reward_source": self.reward_source,
            "learner.type": self.learner.type,
            "record_action": self.record_action,
        }
        for key, value in values.items():
            if value not in CHOICES[key]:
                raise VismanipError(
                    f"{key} must be one of {', '.join(CHOICES[key])}, not {value!r}"
                )
        for key in ("env_steps", "episodes_per_iteration", "workers", "eval_every"):
            if getattr(self, key) < 1:
                raise VismanipError(f"{key} must be at least 1, not {getattr(self, key)}")
        if self.init_lowdim_std_floor < 0:
            raise VismanipError(
                f"init_lowdim_std_floor must be >= 0, not {self.init_lowdim_std_floor}"
            )
        if self.eval_episodes < 1:
            raise VismanipError(f"eval_episodes must be at least 1, not {self.eval_episodes}")
        if not 0 <= self.guard_max_drop <= 1:
            raise VismanipError(f"guard_max_drop must be in [0, 1], not {self.guard_max_drop}")
        if not 0 <= self.learner.policy_average < 1:
            raise VismanipError(
                f"learner.policy_average must be in [0, 1), not {self.learner.policy_average}"
            )
        if not 0 <= self.learner.demo_fraction < 1:
            raise VismanipError(
                f"learner.demo_fraction must be in [0, 1), not {self.learner.demo_fraction}"
            )
        if not 0 <= self.learner.action_noise <= 1:
            raise VismanipError(
                f"learner.action_noise must be in [0, 1], not {self.learner.action_noise}"
            )
        schedule = self.learner.action_noise_schedule
        if any(len(pair) != 2 or pair[0] < 0 or not 0 < pair[1] <= 1 for pair in schedule) or [
            pair[0] for pair in schedule
        ] != sorted(pair[0] for pair in schedule):
            raise VismanipError(
                "learner.action_noise_schedule must be [[env_steps, std], ...] with rising "
                f"env_steps and 0 < std <= 1, not {schedule}"
            )
        if schedule and self.learner.action_noise <= 0:
            raise VismanipError(
                "learner.action_noise_schedule needs learner.action_noise > 0 (noise after "
                "the tanh) to start from"
            )
        if not self.learner.noise_dims or not set(self.learner.noise_dims) <= set(
            range(ACTION_DIM)
        ):
            raise VismanipError(
                f"learner.noise_dims must name action dimensions 0-6, not {self.learner.noise_dims}"
            )
        self.runner.check()
        low_high = self.explore_perturbation
        if len(low_high) != 2 or not 0 <= low_high[0] <= low_high[1] <= 1:
            raise VismanipError(
                f"explore_perturbation must be [low, high] with 0 <= low <= high <= 1, "
                f"not {low_high}"
            )
        if self.disc.relative and self.disc.input != "state":
            raise VismanipError("disc.relative=true needs disc.input=state")
        if not self.disc.object_orientation and self.disc.input != "state":
            raise VismanipError("disc.object_orientation=false needs disc.input=state")
        if self.learner.bc_q_filter and self.learner.type == "ppo":
            raise VismanipError(
                "learner.bc_q_filter needs a critic of actions: learner.type=sac or iql"
            )
        if self.learner.anchor_weight < 0:
            raise VismanipError(
                f"learner.anchor_weight must be >= 0, not {self.learner.anchor_weight}"
            )
        if self.learner.anchor_weight > 0 and (
            self.learner.type == "ppo" or self.learner.end_to_end.steps > 0
        ):
            raise VismanipError(
                "learner.anchor_weight needs learner.type=sac or iql on the frozen encoder "
                "(learner.end_to_end.steps=0)"
            )
        learner = self.learner
        off_policy_actions = {
            "learner.action_noise": learner.action_noise > 0,
            "learner.noise_hold_steps": learner.noise_hold_steps > 1,
            "learner.gripper_flip_prob": learner.gripper_flip_prob > 0,
            "record_action": self.record_action != "commanded",
        }
        if learner.type == "ppo" and any(off_policy_actions.values()):
            # PPO's ratio is the likelihood of each recorded action under the policy, so the
            # actions must be the policy's own draws (noise before the tanh, a new draw per
            # step), as recorded; the off-policy learners' exploration knobs break that.
            named = ", ".join(key for key, on in off_policy_actions.items() if on)
            raise VismanipError(
                "learner.type=ppo learns from the policy's own action draws: set "
                "learner.action_noise=0, learner.noise_hold_steps=1, "
                f"learner.gripper_flip_prob=0 and record_action=commanded (not: {named})"
            )
        if self.disc.input == "image" and self.disc.pairs == "state_next":
            raise VismanipError(
                "disc.input=image reads one frame per step (the replay keeps no next frame): "
                "use disc.pairs=state or state_action"
            )
        if self.disc.batch_size < 0 or self.disc.batch_size == 1:
            raise VismanipError(
                "disc.batch_size must be 0 (the learner's) or at least 2, not "
                f"{self.disc.batch_size}"
            )
        if self.disc.image_size < 16 or self.disc.image_shift < 0:
            raise VismanipError(
                "disc.image_size must be at least 16 and disc.image_shift at least 0, not "
                f"{self.disc.image_size} and {self.disc.image_shift}"
            )
        if not 0 <= self.learner.gripper_flip_prob <= 1 or self.learner.gripper_flip_steps < 1:
            raise VismanipError(
                "learner.gripper_flip_prob must be in [0, 1] and learner.gripper_flip_steps "
                f"at least 1, not {self.learner.gripper_flip_prob} and "
                f"{self.learner.gripper_flip_steps}"
            )
        if not 0 < self.learner.rotation_noise_scale <= 1:
            raise VismanipError(
                "learner.rotation_noise_scale must be in (0, 1], not "
                f"{self.learner.rotation_noise_scale}"
            )
        if self.learner.rotation_noise_scale < 1 and self.learner.action_noise <= 0:
            raise VismanipError(
                "learner.rotation_noise_scale scales learner.action_noise (noise after the "
                "tanh): set learner.action_noise > 0"
            )
        if self.learner.noise_hold_steps < 1:
            raise VismanipError(
                f"learner.noise_hold_steps must be at least 1, not {self.learner.noise_hold_steps}"
            )
        if self.learner.threads < 1:
            raise VismanipError(f"learner.threads must be at least 1, not {self.learner.threads}")
        if self.learner.batch_size < 2:
            raise VismanipError(
                f"learner.batch_size must be at least 2, not {self.learner.batch_size}"
            )
        if self.learner.ppo.target_kl < 0:
            raise VismanipError(
                f"learner.ppo.target_kl must be 0 (off) or positive, not {self.learner.ppo.target_kl}"
            )
        for key in ("max_ratio", "max_grad_norm", "disc_epochs"):
            if getattr(self.learner.ppo, key) <= 0:
                raise VismanipError(
                    f"learner.ppo.{key} must be positive, not {getattr(self.learner.ppo, key)}"
                )
        end_to_end = self.learner.end_to_end
        if end_to_end.steps < 0 or end_to_end.batch_size < 2 or end_to_end.lr <= 0:
            raise VismanipError(
                "learner.end_to_end needs steps >= 0, batch_size >= 2 and lr > 0, not "
                f"{end_to_end.steps}, {end_to_end.batch_size} and {end_to_end.lr}"
            )
        if end_to_end.steps and (self.learner.type != "iql" or self.disc.input != "state"):
            # SAC's and PPO's actors read the cached features, and with disc.input
            # features or image the critic reads them too: its input would move under it
            # as the encoder trains.
            raise VismanipError(
                "learner.end_to_end.steps > 0 needs learner.type=iql and disc.input=state, "
                f"not {self.learner.type} and {self.disc.input}"
            )
        copies = self.learner.demo_augmented_copies
        if copies < 0:
            raise VismanipError(f"learner.demo_augmented_copies must be >= 0, not {copies}")
        if copies and (end_to_end.steps or self.disc.input == "image"):
            # Those keep frames or images per demo transition: k copies of them would
            # multiply the largest arrays of the run.
            raise VismanipError(
                "learner.demo_augmented_copies needs learner.end_to_end.steps=0 and "
                f"disc.input state or features, not {end_to_end.steps} and {self.disc.input}"
            )
        if not 0 < self.learner.init_std <= 2.7:
            raise VismanipError(
                f"learner.init_std must be in (0, 2.7], not {self.learner.init_std}"
            )

    def steered_dims(self, perturbed: bool) -> list[int]:
        """The action dimensions the RL term may steer: those the critic sees vary in the
        replay (the explored `noise_dims`, plus every dimension a perturbed task's noise
        moves when the replay records that noise: `executed` or `noisy`; the gripper when
        exploration reverses it)."""
        dims = set(self.learner.noise_dims)
        if self.learner.gripper_flip_prob > 0:
            dims.add(GRIPPER_DIM)
        recorded_noise = self.record_action in ("executed", "noisy")
        if perturbed and recorded_noise and self.explore_perturbation[1] > 0:
            dims |= set(PERTURBED_DIMS)
        return sorted(dims)
