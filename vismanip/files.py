"""Writing files so that a reader only ever sees a finished one.

Every long job (collection shards, datasets, checkpoints, exports, run records) writes
through `atomic_write`: the bytes go to a temporary file beside the target, which is renamed
over the target only when complete. A kill leaves the previous file in place; a failed write
(disk full, read-only folder) also deletes the temporary, so nothing half-written is left.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path: str | Path, temporary_name: str = "") -> Iterator[Path]:
    """Yield the temporary path to write; on success it replaces `path`.

    temporary_name: for writers that insist on a suffix (torch.export wants `.pt2`);
    default `<name>.tmp`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(temporary_name or f"{path.name}.tmp")
    try:
        yield temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    temporary.replace(path)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_write(path) as temporary:
        temporary.write_text(text)
