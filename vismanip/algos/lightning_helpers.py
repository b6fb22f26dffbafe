"""Lightning helpers every training loop here shares: a crash-safe checkpoint callback, a
CSV learning curve that survives `--resume` (Lightning starts a resumed run's CSV afresh),
and console output a person can read (one bar per epoch, no advertising, no warnings about
things that are fine here)."""

from __future__ import annotations

import csv
import logging
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

from vismanip.files import atomic_write
from vismanip.progress import quiet


class AtomicCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that writes to a temporary file and renames it into place.

    Lightning overwrites last.ckpt in place, so a kill during the write leaves a truncated
    file that --resume cannot load; a rename is atomic, so the old checkpoint survives.
    """

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if not trainer.is_global_zero:  # DDP: only rank 0 writes; the others join its barrier
            super()._save_checkpoint(trainer, filepath)
            return
        with atomic_write(filepath) as temporary:
            super()._save_checkpoint(trainer, str(temporary))
        self._last_checkpoint_saved = filepath


class EpochProgressBar(TQDMProgressBar):
    """Lightning's bar without the sanity-check and validation bars: those are a second of
    work each, and nesting them under the epoch bar prints a dozen lines per epoch."""

    def init_sanity_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)


class _DropAdvertising(logging.Filter):
    """Lightning's tip, and its accelerator census when there is nothing to use
    ("GPU available: False, used: False", "TPU available: False, ...")."""

    NOTHING_TO_USE = ("GPU available: False", "TPU available: False", "HPU available: False")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "Tip:" not in message and not message.startswith(self.NOTHING_TO_USE)


def quiet_lightning() -> None:
    """Silence what Lightning prints that no one here acts on: its LitLogger tip, the
    "checkpoint directory is not empty" warning (our run folder holds the config and logs
    beside the checkpoints, by design), its "previous log files will be deleted" warning on
    `--resume` (`keep_metrics_before_resume` keeps them) and a torch pytree deprecation
    raised inside Lightning."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdvertising())
    # --quiet/--json: not even "`Trainer.fit` stopped: `max_epochs` reached" (INFO is
    # Lightning's own level for its loggers)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING if quiet() else logging.INFO)
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    warnings.filterwarnings(
        "ignore", message=r"Experiment logs directory .* exists and is not empty"
    )
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


def read_metrics(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def write_metrics(path: Path, rows: list[dict[str, str]]) -> None:
    """Rewrite Lightning's CSV log with every row (the union of columns), atomically."""
    rows = [dict(row) for row in dict.fromkeys(tuple(row.items()) for row in rows)]  # no repeats
    if not rows:
        return
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_write(path) as temporary, temporary.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def keep_metrics_before_resume(run_dir: Path) -> None:
    """Before a resumed fit: move the earlier rows aside, so that killing the resumed run
    loses none of them (Lightning rewrites metrics.csv from scratch)."""
    metrics, earlier = _metrics_paths(run_dir)
    write_metrics(earlier, read_metrics(earlier) + read_metrics(metrics))
    metrics.unlink(missing_ok=True)


def merge_metrics_after_resume(run_dir: Path) -> Path:
    """After a fit: one metrics.csv with the earlier rows and the new ones; returns it."""
    metrics, earlier = _metrics_paths(run_dir)
    if earlier.exists():
        write_metrics(metrics, read_metrics(earlier) + read_metrics(metrics))
        earlier.unlink()
    return metrics


def _metrics_paths(run_dir: Path) -> tuple[Path, Path]:
    logs = run_dir / "logs"
    return logs / "metrics.csv", logs / "metrics_before_resume.csv"
