"""One switch for every progress bar a long job draws.

`vismanip <command> --quiet` (only the final summary line) and `--json` (only a JSON
summary) turn the bars off for the whole process tree: the switch is an environment
variable, so worker processes and Lightning's trainer see it too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

QUIET_VARIABLE = "VISMANIP_QUIET"


def quiet() -> bool:
    """True when the command was asked for no progress output."""
    return os.environ.get(QUIET_VARIABLE, "") == "1"


def set_quiet(on: bool) -> None:
    if on:
        os.environ[QUIET_VARIABLE] = "1"
    else:
        os.environ.pop(QUIET_VARIABLE, None)


def progress_bar(iterable: Iterable | None = None, show: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar, drawn unless `show` is False or the command runs quietly."""
    return tqdm(iterable, disable=not show or quiet(), dynamic_ncols=True, **kwargs)
