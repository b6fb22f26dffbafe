"""Simulator worker processes shared by collection and evaluation.

Each worker builds its env (and GL context) once, in its own process; processes are
spawned, not forked, because GL contexts and robosuite's renderers do not survive a fork.
With one worker, everything runs in the calling process: no pickling, easy to debug.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from itertools import islice
from multiprocessing import get_context
from typing import Any

from vismanip.envs.rendering import ensure_gl_backend


@contextmanager
def worker_pool(
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
    finalizer: Callable[[], None],
    gl_backend: str = "auto",
) -> Iterator[Executor]:
    """An executor whose workers ran `initializer(*initargs)` and run `finalizer` at exit."""
    if workers == 1:
        initializer(*initargs)
        try:
            yield _InProcessExecutor()
        finally:
            finalizer()
        return
    ensure_gl_backend(gl_backend)  # probe once here; the workers inherit MUJOCO_GL
    with ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),
        initializer=_init_process,
        initargs=(initializer, initargs, finalizer),
    ) as pool:
        yield pool


def _init_process(
    initializer: Callable[..., None], initargs: tuple[Any, ...], finalizer: Callable[[], None]
) -> None:
    # One worker per core: Mesa's llvmpipe would otherwise start a render thread per core
    # in every worker, and they would fight over the same cores. Likewise torch threads.
    os.environ.setdefault("LP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    initializer(*initargs)
    # Close envs (and GL contexts) before interpreter teardown: freed later, MuJoCo's EGL
    # destructors find their modules already gone and print tracebacks.
    atexit.register(finalizer)


class _InProcessExecutor(Executor):
    """Runs each submitted call at once, in this process."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def as_finished(pool: Executor, calls: Iterable[tuple], in_flight: int) -> Iterator[Any]:
    """Results of `pool.submit(*call)` for each call as they finish, at most `in_flight`
    submitted at a time. The in-process executor runs a call when it is submitted, so
    submitting everything first would leave a progress bar at 0 until the very end."""
    calls = iter(calls)
    running = {pool.submit(*call) for call in islice(calls, in_flight)}
    while running:
        done, running = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            yield future.result()
        running |= {pool.submit(*call) for call in islice(calls, len(done))}
