"""Typed configs: dataclass defaults <- optional YAML file <- `key=value` overrides.

OmegaConf does the merging and type checking (it is what Hydra uses), so a wrong key or a
value of the wrong type fails with a message naming the key; we only translate its
exceptions into our single-line `VismanipError` and add the run metadata we save.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vismanip.errors import VismanipError

ConfigT = TypeVar("ConfigT")


def load_config(
    schema: type[ConfigT],
    yaml_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    flag_values: dict[str, Any] | None = None,
) -> ConfigT:
    """Build a `schema` dataclass from its defaults, a YAML file, CLI flags and overrides.

    Later sources win: defaults < YAML < flags < `key=value` overrides. Every key must
    exist in the schema, so a typo is an error rather than a silently ignored setting.
    `section=path.yaml` fills a whole nested section from its own file (presets).
    """
    try:
        merged = OmegaConf.structured(schema)
        if yaml_path is not None:
            from_file = OmegaConf.create(_read_yaml(Path(yaml_path)))
            merged = OmegaConf.merge(merged, _lists_as_text(merged, from_file))
        for key, value in (flag_values or {}).items():
            if value is not None:
                OmegaConf.update(merged, key, value, force_add=False)
        bad = [item for item in overrides if "=" not in item]
        if bad:
            raise VismanipError(f"override {bad[0]!r} is not of the form key=value")
        plain = []
        for item in overrides:
            key, _, value = item.partition("=")
            if value.endswith((".yaml", ".yml")) and isinstance(
                OmegaConf.select(merged, key), DictConfig
            ):  # a section from its own file: augmentation=configs/augmentation/strong.yaml
                section = OmegaConf.create({})
                OmegaConf.update(section, key, _read_yaml(Path(value)), force_add=True)
                merged = OmegaConf.merge(merged, section)
            else:
                plain.append(item)
        merged = OmegaConf.merge(merged, _lists_as_text(merged, OmegaConf.from_dotlist(plain)))
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        raise VismanipError(f"bad config: {_first_line(error)}") from None


def _lists_as_text(schema: DictConfig, given: Any) -> Any:
    """A list given for a text field means its items, comma-separated: `data=[a.hdf5,b.hdf5]`
    (or a YAML list) for `data`, which also takes "a.hdf5,b.hdf5" or a glob."""
    if not isinstance(given, DictConfig):
        return given
    for key in list(given.keys()):
        if key not in schema:
            continue  # OmegaConf names the unknown key when merging
        target, value = schema[key], given[key]
        if isinstance(target, str) and isinstance(value, ListConfig):
            given[key] = ",".join(str(item) for item in value)
        elif isinstance(target, DictConfig):
            given[key] = _lists_as_text(target, value)
    return given


def load_run_config(
    schema: type[ConfigT], run_dir: str | Path, overrides: Sequence[str] = ()
) -> ConfigT:
    """The resolved config a run folder was started with (what --resume continues), with
    `overrides`, writing to `run_dir` itself: a run folder moved or copied (another disk or
    machine, a branch of a run) goes on where it is now, not where it was started."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise VismanipError(f"{run_dir}: no config.yaml; is this a vismanip run folder?")
    config = load_config(schema, path, overrides)
    config.output_dir = str(run_dir)  # type: ignore[attr-defined]  # every run config has it
    return config


def config_from_dict(schema: type[ConfigT], values: dict) -> ConfigT:
    """A `schema` dataclass from a stored dict (a run's saved config), type-checked."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        raise VismanipError(f"bad stored config: {_first_line(error)}") from None


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise VismanipError(f"config file not found: {path}")
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise VismanipError(f"config file {path} is not valid YAML: {_first_line(error)}") from None
    if not isinstance(content, dict):
        raise VismanipError(f"config file {path} must hold a mapping of keys to values")
    return content


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # OmegaConf appends "full_key: ..." lines; the first line plus the key is enough.
    key = next((line for line in lines if line.startswith("full_key:")), "")
    return f"{lines[0]} ({key})" if key and key not in lines[0] else lines[0]


def config_to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def git_revision() -> str:
    """The code version a run was made with ('unknown' outside a git checkout)."""
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
        return revision + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_metadata(config: Any, seed: int) -> str:
    """JSON with the resolved config, seed and git revision, saved next to every output."""
    from vismanip import __version__

    return json.dumps(
        {
            "config": config_to_dict(config),
            "seed": seed,
            "git_revision": git_revision(),
            "vismanip_version": __version__,
        },
        indent=2,
    )
