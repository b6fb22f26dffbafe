"""`vismanip` command line: every command takes its flags, then `key=value` config overrides.

    vismanip collect --task lift --episodes 200 --workers 2 --out data/lift.hdf5 expert_noise=0.05
    vismanip data info data/lift.hdf5
    vismanip data validate data/lift.hdf5

Errors a user can cause print one line (`error: ...`) and exit 1; Ctrl-C exits 130 and
long jobs continue when the same command is run again. Every command ends with a summary
line (`--quiet`: that line only, no progress bars; `--json`: the summary as one JSON object).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click

from vismanip.errors import VismanipError
from vismanip.progress import set_quiet

OVERRIDES = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")


@dataclass
class Outcome:
    """What a command prints when it ends: lines for a person, `summary` for `--json`."""

    lines: list[str]
    summary: dict = field(default_factory=dict)
    exit_code: int = 0


def summarized(command: Callable[..., Outcome]) -> Callable[..., None]:
    """Add `--quiet` and `--json` to a command and print its Outcome either way."""

    @click.option("--json", "as_json", is_flag=True, help="Print only a JSON summary at the end.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bars; only the summary line.")
    @functools.wraps(command)
    def wrapper(*args, quiet: bool, as_json: bool, **kwargs) -> None:
        set_quiet(quiet or as_json)
        outcome = command(*args, **kwargs)
        if as_json:
            click.echo(json.dumps(outcome.summary, default=str))
        else:
            for line in outcome.lines:
                click.echo(line, err=outcome.exit_code != 0)
        if outcome.exit_code:
            sys.exit(outcome.exit_code)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vismanip")
def cli() -> None:
    """Vision-based manipulation from demonstrations: collect, inspect, train, evaluate, export."""


def _named_objects(set_name: str | None) -> list[str] | None:
    """The objects of `--object-set NAME` (None when the flag is not given)."""
    if not set_name:
        return None
    from vismanip.envs.objects import object_set

    return object_set(set_name)


@cli.command()
@click.option(
    "--config", "config_path", type=click.Path(), help="YAML config (configs/collect/*.yaml)."
)
@click.option("--task", help="Task name: lift, pick_place_can, pick_place (any --object).")
@click.option("--episodes", type=int, help="Demos wanted in the output.")
@click.option("--workers", type=int, help="Simulator processes.")
@click.option("--camera", help="Comma-separated cameras, e.g. agentview,robot0_eye_in_hand.")
@click.option("--size", type=int, help="Image side in pixels.")
@click.option("--seed", type=int, help="Base seed (attempt k uses the seed derived from seed, k).")
@click.option("--out", help="Output HDF5 path.")
@click.option("--keep-failed", is_flag=True, default=None, help="Keep unsuccessful episodes too.")
@click.option("--object", "object_name", help="The object to handle (e.g. bottle, ball).")
@click.option("--object-set", help="An object per episode from this set (train, novel, all).")
@click.option("--clutter", type=int, help="Distractor objects around the target (0-6).")
@OVERRIDES
@summarized
def collect(
    config_path,
    task,
    episodes,
    workers,
    camera,
    size,
    seed,
    out,
    keep_failed,
    object_name,
    object_set,
    clutter,
    overrides,
):
    """Collect scripted-expert camera demos into a robomimic HDF5 (resumable)."""
    from vismanip.config import load_config
    from vismanip.data.collect import CollectConfig
    from vismanip.data.collect import collect as run_collect
    from vismanip.data.validate import dataset_info

    cameras = [name.strip() for name in camera.split(",") if name.strip()] if camera else None
    objects = None
    if object_name and object_set:
        raise VismanipError("pass --object or --object-set, not both")
    if object_name:
        objects = [object_name]
    elif object_set:
        objects = _named_objects(object_set)
    config = load_config(
        CollectConfig,
        config_path,
        overrides,
        flag_values={
            "env.task": task,
            "episodes": episodes,
            "workers": workers,
            "env.cameras": cameras,
            "env.image_size": size,
            "seed": seed,
            "out": out,
            "keep_failed": keep_failed,
            "env.objects": objects,
            "env.clutter": clutter,
        },
    )
    path = run_collect(config)
    info = dataset_info(path)
    return Outcome(
        [
            f"{path}: {info['demos']} demos, {info['steps']} steps "
            f"({info['success']['successful']} successful of {info['attempts']} attempts)"
        ],
        info,
    )


@cli.command()
@click.option("--config", "config_path", type=click.Path(), help="YAML config (configs/bc/*.yaml).")
@click.option("--resume", "resume_dir", type=click.Path(), help="Continue the run in this folder.")
@OVERRIDES
@summarized
def train(config_path, resume_dir, overrides):
    """Train an image policy by behavioural cloning (Lightning); resumable."""
    from vismanip.algos.bc import TrainConfig
    from vismanip.algos.bc import train as run_train
    from vismanip.config import load_config, load_run_config

    if resume_dir:
        config = load_run_config(TrainConfig, resume_dir)
        extendable = {"trainer.max_epochs"}  # training longer keeps the run comparable
        if config_path or any(item.partition("=")[0] not in extendable for item in overrides):
            raise VismanipError(
                "--resume continues a run with its saved config; only trainer.max_epochs=N "
                "(train longer) may be given"
            )
        config = load_run_config(TrainConfig, resume_dir, overrides)
    else:
        config = load_config(TrainConfig, config_path, overrides)
    best = run_train(config, resume=bool(resume_dir))
    return Outcome(
        [f"best checkpoint: {best}"],
        {
            "output_dir": config.output_dir,
            "best_checkpoint": str(best),
            "last_checkpoint": str(Path(config.output_dir) / "last.ckpt"),
            "max_epochs": config.trainer.max_epochs,
        },
    )


@cli.command()
@click.option(
    "--config", "config_path", type=click.Path(), help="YAML config (configs/dagger/*.yaml)."
)
@click.option("--resume", "resume_dir", type=click.Path(), help="Continue the run in this folder.")
@click.option("--object-set", help="Roll out with objects drawn from this set (train, novel, all).")
@click.option("--clutter", type=int, help="Distractor objects around the target (0-6).")
@OVERRIDES
@summarized
def dagger(config_path, resume_dir, object_set, clutter, overrides):
    """DAgger: roll out the learner, label its states with the expert, aggregate, retrain."""
    from vismanip.algos.dagger import DaggerConfig
    from vismanip.algos.dagger import dagger as run_dagger
    from vismanip.config import load_config, load_run_config

    if resume_dir:
        if overrides or config_path or object_set or clutter is not None:
            raise VismanipError(
                "--resume continues a run with its saved config; drop the other settings"
            )
        config = load_run_config(DaggerConfig, resume_dir)
    else:
        config = load_config(
            DaggerConfig,
            config_path,
            overrides,
            flag_values={"objects": _named_objects(object_set), "clutter": clutter},
        )
    history = run_dagger(config, resume=bool(resume_dir))
    last = history[-1]
    return Outcome(
        [
            f"{config.output_dir}: {last['round']} rounds, {last['labels_total']} expert "
            f"labels, success {100 * last['success_rate']:.0f}%; "
            f"report in {config.output_dir}/report.html"
        ],
        {"output_dir": config.output_dir, "report": f"{config.output_dir}/report.html", **last},
    )


@cli.command()
@click.option(
    "--config", "config_path", type=click.Path(), help="YAML config (configs/gail/*.yaml)."
)
@click.option("--resume", "resume_dir", type=click.Path(), help="Continue the run in this folder.")
@click.option("--object-set", help="Interact with objects drawn from this set (train, novel, all).")
@click.option("--clutter", type=int, help="Distractor objects around the target (0-6).")
@OVERRIDES
@summarized
def gail(config_path, resume_dir, object_set, clutter, overrides):
    """GAIL: a discriminator's reward + off-policy RL from a BC policy, no new expert labels."""
    from vismanip.algos.gail.configuration import GailConfig
    from vismanip.algos.gail.run import gail as run_gail
    from vismanip.config import load_config, load_run_config

    if resume_dir:
        extendable = {"env_steps"}  # a longer budget keeps the run comparable
        if (
            config_path
            or object_set
            or clutter is not None
            or any(item.partition("=")[0] not in extendable for item in overrides)
        ):
            raise VismanipError(
                "--resume continues a run with its saved config; only env_steps=N "
                "(train longer) may be given"
            )
        # one line if not a run folder
        config = load_run_config(GailConfig, resume_dir, overrides)
    else:
        config = load_config(
            GailConfig,
            config_path,
            overrides,
            flag_values={"objects": _named_objects(object_set), "clutter": clutter},
        )
    history = run_gail(config, resume=bool(resume_dir))
    last = history[-1]
    return Outcome(
        [
            f"{config.output_dir}: {last['env_steps']} env steps, success "
            f"{100 * last['success_rate']:.0f}% (best.ckpt: the best evaluation); "
            f"report in {config.output_dir}/report.html"
        ],
        {"output_dir": config.output_dir, "report": f"{config.output_dir}/report.html", **last},
    )


@cli.command(name="eval")
@click.argument("checkpoint", type=click.Path())
@click.option("--task", help="Task to evaluate in (default: the one the policy was trained for).")
@click.option("--episodes", type=int, default=50, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True)
@click.option(
    "--videos", type=int, default=0, show_default=True, help="GIFs of the first N episodes."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--shift",
    help="Visual-shift splits, comma-separated: none (the nominal scene), unseen-textures, "
    "lighting, camera, all. Writes a table, bar plot and contact sheet over the splits.",
)
@click.option(
    "--suite",
    help="A named set of splits: generalization (seen and novel objects, clutter 2 and 4, "
    "and the visual-shift splits), with one report over them.",
)
@click.option(
    "--splits",
    help="With --suite: only these of its splits, comma-separated (e.g. seen,novel,clutter_4).",
)
@click.option("--out", type=click.Path(), help="Report folder (default: next to the checkpoint).")
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where the workers live: processes here, or Ray actors (pip install -e '.[ray]').",
)
@click.option(
    "--address", default="", help="Ray address: auto (the cluster here) or ray://host:10001."
)
@summarized
def evaluate(
    checkpoint, task, episodes, workers, videos, seed, shift, suite, splits, out, backend, address
):
    """Roll a trained policy out in the simulator: success rate, metrics, videos, report.

    CHECKPOINT is a training checkpoint (.ckpt) or an exported artifact (.pt, .pt2, .onnx).
    Every split uses the same episode seeds, so splits differ only in how the scene looks.
    """
    from vismanip.evaluation.evaluate import run_evaluation
    from vismanip.evaluation.report import write_report, write_split_report
    from vismanip.evaluation.suites import shift_splits, suite_splits
    from vismanip.policies.checkpoint import load_policy
    from vismanip.rollout.runner import EpisodeRunner, RunnerConfig, Scene

    if shift and suite:
        raise VismanipError("pass --shift or --suite, not both")
    if splits and not suite:
        raise VismanipError("--splits picks splits of a --suite: pass --suite too")
    policy = load_policy(checkpoint)
    env_config = policy.env_for(task or "")
    title = f"{Path(checkpoint).name} on {env_config.task}"
    if suite:
        only = [name.strip() for name in (splits or "").split(",") if name.strip()]
        scenes, report = suite_splits(suite, env_config, only), suite
    elif shift:
        names = [name.strip() for name in shift.split(",") if name.strip()]
        scenes, report = shift_splits(env_config, names), "shift"
    else:
        scenes, report = {"": Scene(env_config)}, ""
    # One set of workers for every split: a split with another scene rebuilds only the env.
    runner_config = RunnerConfig(backend, address)
    with EpisodeRunner(workers, runner_config, env_config.render.backend) as runner:
        runner.set_policy(policy.source)
        evaluations = {
            name: run_evaluation(
                runner, scene, episodes, seed, videos, show_progress=True, desc=name or "eval"
            )
            for name, scene in scenes.items()
        }
    if not report:
        folder = Path(out) if out else Path(checkpoint).parent / f"eval_{env_config.task}"
        write_report(folder, title, evaluations[""], env_config.control_freq)
        return Outcome(
            [f"{title}: {_success_line(evaluations[''].summary)}; report in {folder}/report.html"],
            {"report": f"{folder}/report.html", **evaluations[""].summary},
        )
    folder = Path(out) if out else Path(checkpoint).parent / f"eval_{env_config.task}_{report}"
    notes = "".join(
        f"- {name}: objects {scene.env.objects or ['(the task default)']}, "
        f"clutter {scene.env.clutter}, randomization "
        f"{'none' if scene.randomization is None else 'yes'}\n"
        for name, scene in scenes.items()
    )
    write_split_report(folder, title, evaluations, env_config.control_freq, report, notes + "\n")
    return Outcome(
        [f"{name}: {_success_line(evaluation.summary)}" for name, evaluation in evaluations.items()]
        + [f"report in {folder}/report.html"],
        {
            "report": f"{folder}/report.html",
            "splits": {name: evaluation.summary for name, evaluation in evaluations.items()},
        },
    )


def _success_line(summary: dict) -> str:
    low, high = summary["success_ci95"]
    return (
        f"success {100 * summary['success_rate']:.0f}% "
        f"(95% CI {100 * low:.0f}-{100 * high:.0f}%, {summary['episodes']} episodes)"
    )


@cli.command(name="export")
@click.argument("checkpoint", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["torchscript", "torch_export", "onnx"]),
    help="Artifact format (default: from --out's suffix: .pt, .pt2, .onnx).",
)
@click.option("--out", type=click.Path(), help="Artifact path (default: policy.pt next to CKPT).")
@click.option(
    "--data", type=click.Path(), help="HDF5 for the parity check (default: the training data)."
)
@click.option("--samples", type=int, default=100, show_default=True, help="Parity observations.")
@summarized
def export(checkpoint, fmt, out, data, samples):
    """Export a checkpoint for a robot (TorchScript, torch.export or ONNX), parity-checked."""
    from vismanip.export import export_policy
    from vismanip.policies.artifact import FORMATS

    if out is None:
        out = Path(checkpoint).parent / f"policy{FORMATS[fmt or 'torchscript']}"
    report = export_policy(checkpoint, out, fmt, data, samples)
    return Outcome(
        [
            f"{report.path}: {report.format}, max |exported - eager| = "
            f"{report.max_abs_diff:.1e} on {report.samples} observations of {report.data} "
            f"(limit {report.tolerance:.0e})"
        ],
        asdict(report),
    )


@cli.group()
def data() -> None:
    """Inspect and check datasets."""


@data.command()
@click.argument("path", type=click.Path())
@summarized
def info(path: str) -> Outcome:
    """Demos, steps, observation keys and shapes, action range, success."""
    from vismanip.data.validate import dataset_info

    summary = dataset_info(path)
    length = summary["episode_length"]
    success = summary["success"]
    lines = [
        f"{summary['path']}  ({summary['env_name']})",
        f"  demos      {summary['demos']}  (masks: {summary['masks'] or 'none'})",
        f"  steps      {summary['steps']}  (per demo min {length['min']}, "
        f"mean {length['mean']:.1f}, max {length['max']})",
    ]
    if success["known"]:
        lines.append(f"  success    {success['successful']}/{success['known']} demos")
    lines += [f"  images     {summary['image_convention']} orientation", "  obs"]
    for key, spec in summary["obs"].items():
        lines.append(f"    {key:<28} {tuple(spec['shape'])!s:<16} {spec['dtype']}")
    lines += [f"  action min {summary['action_min']}", f"  action max {summary['action_max']}"]
    return Outcome(lines, summary)


@data.command()
@click.argument("path", type=click.Path())
@summarized
def validate(path: str) -> Outcome:
    """Exit 0 if the dataset is valid; else print one line per problem and exit 1."""
    from vismanip.data.validate import validate_dataset

    problems = validate_dataset(path)
    summary = {"path": path, "valid": not problems, "problems": problems}
    if problems:
        lines = [p if p.startswith(path) else f"{path}: {p}" for p in problems]
        return Outcome(lines, summary, exit_code=1)
    return Outcome([f"{path}: valid"], summary)


@data.command()
@click.argument("out", type=click.Path())
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--first", type=int, default=None, help="Keep only each input's first N demos.")
@summarized
def merge(out: str, inputs: tuple[str, ...], first: int | None) -> Outcome:
    """Merge datasets into OUT: demos renumbered, masks merged, provenance kept."""
    from vismanip.data.merge import merge_datasets

    demos = merge_datasets(out, list(inputs), first)
    return Outcome(
        [f"{demos} demos from {len(inputs)} files written to {out}"],
        {"out": out, "demos": demos, "inputs": list(inputs)},
    )


@data.command(name="export")
@click.argument("path", type=click.Path())
@click.option("--to", "fmt", type=click.Choice(["lerobot"]), required=True, help="Target format.")
@click.option("--out", required=True, type=click.Path(), help="Folder of the new dataset.")
@click.option("--repo-id", default="", help="LeRobot repo id (default vismanip/<file stem>).")
@summarized
def export_data(path: str, fmt: str, out: str, repo_id: str) -> Outcome:
    """Write a robomimic HDF5 as a LeRobotDataset (v3: parquet + per-camera video)."""
    from vismanip.interop.lerobot import export_lerobot

    folder = export_lerobot(path, out, repo_id)
    return Outcome([f"LeRobotDataset written to {folder}"], {"format": fmt, "out": str(folder)})


@data.command(name="import")
@click.argument("folder", type=click.Path())
@click.option("--from", "fmt", type=click.Choice(["lerobot"]), required=True, help="Source format.")
@click.option("--out", required=True, type=click.Path(), help="The HDF5 file to write.")
@click.option("--repo-id", default="", help="LeRobot repo id of the folder (any name works).")
@summarized
def import_data(folder: str, fmt: str, out: str, repo_id: str) -> Outcome:
    """Read a LeRobotDataset into a robomimic HDF5 that `vismanip train` reads."""
    from vismanip.interop.lerobot import import_lerobot

    demos = import_lerobot(folder, out, repo_id)
    return Outcome([f"{demos} demos written to {out}"], {"format": fmt, "out": out, "demos": demos})


def main() -> None:
    """Console entry point: one line per user error, no traceback."""
    main_with_args(None)


def main_with_args(args: list[str] | None) -> None:
    """`main()` on these arguments (None: the command line); exits with the status."""
    try:
        cli.main(args, standalone_mode=False)
    except VismanipError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    except OSError as error:  # the disk, not our code: full, read-only, no permission
        where = f"{error.filename}: " if error.filename else ""
        reason = error.strerror or " ".join(str(error).split())
        click.echo(f"error: {where}{reason}; files written before are kept", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("interrupted; run the same command again to continue", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted; run the same command again to continue", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
