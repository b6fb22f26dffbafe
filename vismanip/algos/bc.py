"""Behavioural cloning of an ImagePolicy with Lightning: loops, checkpoints, logs and resume
are Lightning's; what is ours is the config, the augmentation on the batch, and rollouts in
the simulator that pick the best checkpoint by success rate rather than by loss.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from vismanip.algos.lightning_helpers import (
    AtomicCheckpoint,
    EpochProgressBar,
    keep_metrics_before_resume,
    merge_metrics_after_resume,
    quiet_lightning,
)
from vismanip.config import run_metadata
from vismanip.data.datamodule import (
    DemoDataModule,
    LoaderConfig,
    action_width,
    dataset_paths,
    dataset_shapes,
)
from vismanip.data.merge import check_compatible
from vismanip.data.validate import require_valid_dataset
from vismanip.envs.actions import ACTION_DIM
from vismanip.envs.tasks import TASKS, EnvConfig, task_spec
from vismanip.errors import VismanipError
from vismanip.evaluation.evaluate import run_evaluation
from vismanip.evaluation.report import plot_learning_curve
from vismanip.files import write_text_atomic
from vismanip.policies import ImagePolicy, ImagePolicyConfig
from vismanip.policies.checkpoint import (
    PolicyWeights,
    checkpoint_metadata,
    load_policy,
    trained_epochs,
)
from vismanip.progress import quiet
from vismanip.rollout.runner import EpisodeRunner, Scene
from vismanip.sim2real.augmentation import (
    AugmentationConfig,
    KorniaAugment,
    SampleAugmentation,
    albumentations_pipeline,
)
from vismanip.sim2real.randomization import RandomizationConfig


@dataclass
class OptimConfig:
    """AdamW with cosine decay to zero over the run."""

    lr: float = 1e-3
    weight_decay: float = 1e-4


@dataclass
class TrainerConfig:
    """Passed to lightning.Trainer.

    devices, num_nodes, strategy: `trainer.devices=4 trainer.strategy=ddp` trains on 4
        GPUs (or CPU processes, with gloo) of this machine; `trainer.num_nodes=M` across
        machines, launched by torchrun or SLURM (README). Each rank reads its own share
        of every epoch, rollouts and files happen on rank 0.
    """

    max_epochs: int = 50
    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = 10


@dataclass
class RolloutConfig:
    """Rollouts in the simulator during training; the best checkpoint is the most successful.

    every_n_epochs: 0 turns them off (best.ckpt then follows the validation loss); make
        trainer.max_epochs a multiple of it so the last epoch is judged too.
    randomization: domain randomization of the rollout scenes (off by default), so a policy
        trained for randomized scenes is judged in them:
        `rollout.randomization=configs/randomization/default.yaml`. The held-out textures
        are refused: they belong to the evaluation splits.
    """

    every_n_epochs: int = 10
    episodes: int = 10
    workers: int = 1
    seed: int = 0
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)

    def scene(self, env_config: EnvConfig) -> Scene:
        randomization = self.randomization if self.randomization.enabled() else None
        return Scene(env_config, randomization)


@dataclass
class TrainConfig:
    """One BC run: `vismanip train --config configs/bc/lift.yaml data=... key=value`.

    data: the HDF5 dataset (ours or robomimic's).
    output_dir: the run folder (config, checkpoints, logs, plots).
    task: task for rollouts; "" infers it from the dataset's env_args.
    augmentation: image augmentation (default: a DrQ-style random shift of up to 4 pixels);
        `augmentation=configs/augmentation/<preset>.yaml` loads a preset.
    init_checkpoint: start from this checkpoint's policy (weights and proprio statistics)
        instead of from scratch: fine-tuning, DAgger's warm starts.
    """

    data: str = ""
    output_dir: str = "runs/bc"
    seed: int = 0
    task: str = ""
    init_checkpoint: str = ""
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    policy: ImagePolicyConfig = field(default_factory=ImagePolicyConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)


class BCModule(L.LightningModule):
    def __init__(
        self, policy: ImagePolicy, config: TrainConfig, env_config: EnvConfig | None
    ) -> None:
        super().__init__()
        self.policy = policy
        self.config = config
        self.env_config = env_config
        # kornia augments batches here, on the training device; the albumentations backend
        # augments samples in the data loader instead (see train()).
        self.augment = (
            KorniaAugment(config.augmentation, policy.image_size, len(policy.image_keys))
            if config.augmentation.resolved_backend(config.trainer.accelerator) == "kornia"
            else None
        )

    def setup(self, stage: str) -> None:
        """Each rank draws its own augmentation (seed + rank), reproducibly; with one
        process this is the seed the run started with."""
        rank = self.trainer.global_rank
        if self.trainer.world_size > 1:
            torch.manual_seed(self.config.seed + rank)  # kornia's draws
        data = getattr(self.trainer, "datamodule", None)
        transform = getattr(data, "train_transform", None)
        if isinstance(transform, SampleAugmentation):
            transform.reseed(self.config.seed + rank)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, _ = self.policy(batch, image_transform=self.augment)
        self.log(
            "train/loss",
            loss,
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(batch["actions"]),
        )
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, _ = self.policy(batch)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(batch["actions"]))

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(
            self.policy.parameters(),
            lr=self.config.optim.lr,
            weight_decay=self.config.optim.weight_decay,
        )
        trainer = self.trainer

        def cosine(epoch: int) -> float:
            # Cosine decay to zero at the end of training. Closed form reading max_epochs
            # now, unlike CosineAnnealingLR whose restored T_max would climb back up when
            # `train --resume … trainer.max_epochs=N` trains longer: here the rest of the
            # decay stretches over the new length.
            return 0.5 * (1 + math.cos(math.pi * min(1.0, epoch / max(1, trainer.max_epochs))))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    def on_train_start(self) -> None:
        """Set the rate from the schedule now: a resumed run would else spend its first epoch
        on the rate restored from the checkpoint (zero, where the shorter run had ended)."""
        schedule = self.lr_schedulers()
        assert isinstance(schedule, torch.optim.lr_scheduler.LambdaLR)
        for group, base_lr, factor in zip(
            schedule.optimizer.param_groups, schedule.base_lrs, schedule.lr_lambdas, strict=True
        ):
            group["lr"] = base_lr * factor(schedule.last_epoch)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["vismanip"] = checkpoint_metadata(self.policy, self.env_config, self.config)


class RolloutCallback(Callback):
    """Every N epochs: roll the current policy out and log `rollout/success_rate`.

    Its workers live for the whole fit (built at the first rollout epoch) and receive the
    new weights each time, instead of a fresh process pool per evaluation.
    """

    def __init__(self, config: RolloutConfig, env_config: EnvConfig) -> None:
        self.config = config
        self.env_config = env_config
        self.runner: EpisodeRunner | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        assert isinstance(module, BCModule)
        epoch = trainer.current_epoch + 1
        if epoch % self.config.every_n_epochs:
            return
        success_rate = 0.0
        if trainer.is_global_zero:  # one simulator evaluation, not one per rank
            if self.runner is None:
                self.runner = EpisodeRunner(
                    self.config.workers, gl_backend=self.env_config.render.backend
                )
            self.runner.set_policy(PolicyWeights.of(module.policy))
            success_rate = run_evaluation(
                self.runner,
                self.config.scene(self.env_config),
                self.config.episodes,
                self.config.seed,
                for_selection=True,  # it picks best.ckpt: not on `vismanip eval`'s episodes
            ).summary["success_rate"]
        # every rank logs rank 0's number, so they agree on which checkpoint is best
        success_rate = trainer.strategy.broadcast(success_rate, src=0)
        module.log("rollout/success_rate", success_rate, prog_bar=True)

    def teardown(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None


def env_config_for(env_args: dict, cameras: list[str], image_size: int, task: str) -> EnvConfig:
    """The env a policy trained on this dataset is evaluated in (our file or robomimic's).

    A `task` of the same robosuite env as the demos' (lift_perturbed for lift demos) keeps
    the demos' scene (objects, clutter, rendering): DAgger retrains with its task given, and
    its checkpoints must still call the demos' objects seen.
    """
    stored = env_args.get("vismanip", {}).get("env_config")
    if stored:
        demos_env = EnvConfig.from_dict(stored)
        if not task:
            return demos_env
        if task_spec(task).env_name == task_spec(demos_env.task).env_name:
            return replace(demos_env, task=task, cameras=cameras, image_size=image_size)
    if not task:
        by_env_name = {
            spec.env_name: name for name, spec in TASKS.items() if spec.perturbation is None
        }
        task = by_env_name.get(env_args.get("env_name", ""), "")
        if not task:
            raise VismanipError(
                f"dataset env {env_args.get('env_name')!r} has no vismanip task; pass task=<name> "
                f"(valid: {', '.join(TASKS)}) or rollout.every_n_epochs=0"
            )
    return EnvConfig(task=task, cameras=cameras, image_size=image_size)


@dataclass
class BCSetup:
    """What a BC config builds: the policy (normalised on the data), the data and the env."""

    policy: ImagePolicy
    data: DemoDataModule
    env_config: EnvConfig | None


def build(config: TrainConfig) -> BCSetup:
    """Policy + data + augmentation from a config; fills `config.policy.cameras` from the
    data when empty. DAgger retrains and GAIL's BC term reuse it."""
    if not config.data:
        raise VismanipError("no dataset given: pass data=path/to/demos.hdf5")
    paths = dataset_paths(config.data)
    if len(paths) > 1:
        check_compatible(paths)  # each file valid, and all alike (env settings, observations)
    else:
        require_valid_dataset(paths[0])
    image_size, lowdim_dims, cameras, env_args = dataset_shapes(paths[0])
    if not config.policy.cameras:
        config.policy.cameras = cameras
    unknown = [c for c in config.policy.cameras if c not in cameras]
    if unknown:
        raise VismanipError(
            f"{config.data}: no images for camera {unknown[0]!r}; it has {', '.join(cameras)}"
        )
    missing = [k for k in config.policy.lowdim_keys if k not in lowdim_dims]
    if missing:
        raise VismanipError(
            f"{config.data}: no obs key {missing[0]!r}; low-dim keys: {', '.join(sorted(lowdim_dims))}"
        )

    actions = action_width(paths[0])
    if actions != ACTION_DIM and (config.rollout.every_n_epochs > 0 or config.task):
        raise VismanipError(
            f"{config.data}: its actions have {actions} numbers, the simulator executes the "
            f"{ACTION_DIM}-D OSC command; train without rollouts: rollout.every_n_epochs=0"
        )
    policy = ImagePolicy(config.policy, image_size, lowdim_dims, actions)
    config.augmentation.check()
    config.rollout.randomization.check(allow_heldout=False)
    sample_augment = (
        albumentations_pipeline(config.augmentation, image_size, policy.image_keys, config.seed)
        if config.augmentation.resolved_backend(config.trainer.accelerator) == "albumentations"
        else None
    )
    data = DemoDataModule(
        config.data,
        config.loader,
        policy.image_keys + policy.lowdim_keys,
        config.seed,
        train_transform=sample_augment,
        action_horizon=config.policy.action_horizon,
        obs_history=config.policy.frames,
    )
    data.setup()
    assert data.train_set is not None  # setup() made it
    policy.set_normalization(*data.train_set.lowdim_stats(policy.lowdim_keys))
    if config.init_checkpoint:
        _load_initial_weights(policy, config.init_checkpoint)
    policy.set_action_range(*data.train_set.action_range())
    env_config = (
        env_config_for(env_args, config.policy.cameras, image_size, config.task)
        if config.rollout.every_n_epochs > 0 or config.task
        else None
    )
    return BCSetup(policy, data, env_config)


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Train (or resume) a BC run in `config.output_dir`; returns the best checkpoint path."""
    if not config.data:
        raise VismanipError("no dataset given: pass data=path/to/demos.hdf5")
    run_dir = Path(config.output_dir)
    last = run_dir / "last.ckpt"
    if last.exists() and not resume:
        raise VismanipError(
            f"{run_dir} already holds a run; continue it with --resume {run_dir}, or pick another output_dir"
        )
    if resume and not last.exists():
        raise VismanipError(f"{run_dir}: no last.ckpt to resume from")
    if resume:
        trained = trained_epochs(last)
        if trained > config.trainer.max_epochs:
            raise VismanipError(
                f"{run_dir} has trained {trained} epochs already; "
                f"trainer.max_epochs={config.trainer.max_epochs} would train fewer"
            )
    L.seed_everything(config.seed, workers=True, verbose=False)
    setup = build(config)
    rollouts = config.rollout.every_n_epochs > 0

    run_dir.mkdir(parents=True, exist_ok=True)
    if getattr(rank_zero_only, "rank", 0) == 0:  # other DDP ranks run this function too
        write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(asdict(config), sort_keys=False))
        write_text_atomic(run_dir / "run.json", run_metadata(config, config.seed))
    monitor = (
        ("rollout/success_rate", "max")
        if rollouts
        else ("val/loss", "min")
        if setup.data.valid_set
        else ("train/loss_epoch", "min")
    )
    callbacks: list[Callback] = [
        # last.ckpt after every epoch: what --resume continues from after a crash. Lightning
        # 2.6 writes save_last only alongside a top-k save, so "last" is the single
        # unmonitored top-k checkpoint, rewritten every epoch.
        AtomicCheckpoint(
            dirpath=run_dir,
            filename="last",
            save_top_k=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        ),
        AtomicCheckpoint(
            dirpath=run_dir,
            filename="best",
            monitor=monitor[0],
            mode=monitor[1],
            save_top_k=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
            auto_insert_metric_name=False,
            # judged only on epochs that have rollouts (the metric exists only then)
            every_n_epochs=config.rollout.every_n_epochs if rollouts else 1,
        ),
        LearningRateMonitor(logging_interval="epoch"),  # the schedule, in the logs
    ]
    if not quiet():
        callbacks.append(EpochProgressBar())
    if rollouts:
        assert setup.env_config is not None
        callbacks.insert(0, RolloutCallback(config.rollout, setup.env_config))
    quiet_lightning()
    trainer = L.Trainer(
        default_root_dir=run_dir,
        max_epochs=config.trainer.max_epochs,
        accelerator=config.trainer.accelerator,
        devices=config.trainer.devices,
        num_nodes=config.trainer.num_nodes,
        strategy=config.trainer.strategy,
        precision=config.trainer.precision,  # type: ignore[arg-type]  # Lightning checks it
        log_every_n_steps=config.trainer.log_every_n_steps,
        logger=[
            CSVLogger(run_dir, name="logs", version=""),
            TensorBoardLogger(run_dir, name="logs", version=""),
        ],
        callbacks=callbacks,
        deterministic=False,
        enable_model_summary=False,
        enable_progress_bar=not quiet(),
    )
    module = BCModule(setup.policy, config, setup.env_config)
    if resume:
        keep_metrics_before_resume(run_dir)
    trainer.fit(module, datamodule=setup.data, ckpt_path=str(last) if resume else None)
    if not trainer.is_global_zero:
        return run_dir / "best.ckpt"  # rank 0 writes the files and reports
    metrics = merge_metrics_after_resume(run_dir)
    plot_learning_curve(metrics, run_dir / "learning_curve.png")
    best = run_dir / "best.ckpt"
    if not best.exists():  # never report a checkpoint that was not written
        raise VismanipError(f"{run_dir}: training finished without writing best.ckpt")
    return best


def _load_initial_weights(policy: ImagePolicy, checkpoint: str) -> None:
    weights = load_policy(checkpoint).weights
    if weights.description != policy.describe():
        raise VismanipError(
            f"init_checkpoint {checkpoint}: its policy (cameras, sizes, architecture) differs "
            "from the one this config builds"
        )
    weights.load_into(policy)


__all__ = ["BCSetup", "TrainConfig", "build", "train"]
