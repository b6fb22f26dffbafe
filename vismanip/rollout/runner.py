"""EpisodeRunner: the one way to run many seeded episodes in parallel.

Collection, evaluation (and training's rollouts), DAgger and GAIL hand it *tasks*: small
picklable callables `task(worker) -> result` that run one episode inside a worker. A
worker is persistent: it builds its env and GL context once (again only when a task asks
for another scene) and keeps them across `run` calls; a new policy (weights or a loader)
is sent to each worker once, before its next task, not once per episode. This matters
because a fresh process costs about 4 s here (robosuite import, GL probe, env build),
and GAIL asks for thousands of rollout batches with new weights each time.

Backends are the seam for where workers live: `local` runs one spawned process per worker
(spawn, not fork: GL contexts and robosuite's renderers do not survive a fork), or
everything in the calling process when there is one worker (no pickling, easy to debug);
`ray` runs one Ray actor per worker, on a cluster or a Ray instance started here, and
retries an episode whose worker died on a fresh actor (the task carries its seed, so the
retry is the same episode).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol, TypeVar

from vismanip.envs.rendering import ensure_gl_backend, load_triton_before_gl
from vismanip.envs.tasks import EnvConfig
from vismanip.envs.vision_env import VisionEnv
from vismanip.errors import VismanipError
from vismanip.policies.checkpoint import PolicyWeights
from vismanip.sim2real.randomization import RandomizationConfig, randomize_scene

Result = TypeVar("Result")
Result_co = TypeVar("Result_co", covariant=True)
T = TypeVar("T")
# What a worker acts with: weights of an ImagePolicy (rebuilt in the worker, or loaded into
# the one it has when only the numbers changed), or a picklable zero-argument loader, e.g.
# partial(ExportedPolicyActor, path), for anything else with reset()/select_action().
PolicySource = PolicyWeights | Callable[[], Any]
BACKENDS = ("local", "ray")
# Tasks queued per worker: one running and one waiting, so a worker never idles between
# episodes while the parent reads the last result.
IN_FLIGHT_PER_WORKER = 2
# Tries of one episode on the ray backend before the run stops (a worker that dies on
# every try points at the episode, not at a lost node).
MAX_TRIES = 3
# How often a worker checks that its parent still lives (see _exit_with_parent).
PARENT_CHECK_S = 1.0
LOG = logging.getLogger(__name__)


@dataclass
class RunnerConfig:
    """Where rollout workers live (`runner.backend=ray runner.address=auto`).

    backend: "local" (processes on this machine) or "ray" (one Ray actor per worker;
        `pip install -e '.[ray]'`).
    address: Ray's address: "" starts a Ray instance here sized to the workers, "auto"
        joins the one `ray start --head` made, "ray://host:10001" a remote cluster.
    """

    backend: str = "local"
    address: str = ""

    def check(self) -> None:
        if self.backend not in BACKENDS:
            raise VismanipError(
                f"runner.backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}"
            )
        if self.address and self.backend != "ray":
            raise VismanipError("runner.address needs runner.backend=ray")


@dataclass
class Scene:
    """Where an episode runs: the env and, optionally, domain randomization of its looks."""

    env: EnvConfig
    randomization: RandomizationConfig | None = None


class RolloutWorker:
    """What one worker keeps between tasks: its env (rebuilt only when the scene changes)
    and its current policy."""

    def __init__(self) -> None:
        self._scene: Scene | None = None
        self._env: VisionEnv | None = None
        self.policy: Any = None
        self._policy_description: dict | None = None
        self._cache: dict[Hashable, Any] = {}

    def env(self, scene: Scene) -> VisionEnv:
        if self._env is None or scene != self._scene:
            self.close()
            self._env = VisionEnv(scene.env)
            if scene.randomization is not None:
                randomize_scene(self._env, scene.randomization)
            self._scene = scene
        return self._env

    def cached(self, key: Hashable, make: Callable[[], T]) -> T:
        """`make()` once per worker for each key: what tasks reuse across episodes
        (e.g. DAgger's expert factory), so a task itself stays small to pickle."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def set_policy(self, source: PolicySource) -> None:
        if isinstance(source, PolicyWeights):
            if self.policy is not None and source.description == self._policy_description:
                source.load_into(self.policy)  # same architecture: only the numbers change
            else:
                self.policy = source.build()
                self._policy_description = source.description
        else:
            self.policy = source()
            self._policy_description = None

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
            self._scene = None


class Task(Protocol[Result_co]):
    """A picklable callable that runs one episode (or any job) inside a worker."""

    def __call__(self, worker: RolloutWorker) -> Result_co: ...


class EpisodeRunner:
    """Runs tasks on persistent workers; results come back as they finish.

    Use it as a context manager (or call `close()`): the workers live until then.
    """

    def __init__(
        self,
        workers: int = 1,
        backend: str | RunnerConfig = "local",
        gl_backend: str = "auto",
    ) -> None:
        if workers < 1:
            raise VismanipError(f"workers must be at least 1, not {workers}")
        config = backend if isinstance(backend, RunnerConfig) else RunnerConfig(backend)
        config.check()
        self.workers = workers
        self._backend: _Backend
        if config.backend == "ray":
            self._backend = _RayBackend(workers, gl_backend, config.address)
        elif workers == 1:
            self._backend = _InProcessBackend(gl_backend)
        else:
            self._backend = _ProcessBackend(workers, gl_backend)
        self._policy: tuple[int, PolicySource] | None = None

    def set_policy(self, source: PolicySource) -> None:
        """Act with this policy from now on; each worker receives it before its next task."""
        version = self._policy[0] + 1 if self._policy else 1
        self._policy = (version, source)

    def run(self, tasks: Iterable[Task[Result]], ordered: bool = False) -> Iterator[Result]:
        """Each task's result, as tasks finish (or in the tasks' order with `ordered`).

        Tasks are drawn from `tasks` lazily, a few per worker at a time, so a caller may
        stop early (collection stops once it has enough demos); episodes still running
        then finish in their workers and their results are dropped.
        """
        finished = self._backend.run(enumerate(tasks), self._policy)
        if not ordered:
            for _, result in finished:
                yield result
            return
        waiting: dict[int, Result] = {}
        next_index = 0
        for index, result in finished:
            waiting[index] = result
            while next_index in waiting:
                yield waiting.pop(next_index)
                next_index += 1

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> EpisodeRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --------------------------------------------------------------------------- backends


class _Backend(Protocol):
    def run(
        self, tasks: Iterator[tuple[int, Task]], policy: tuple[int, PolicySource] | None
    ) -> Iterator[tuple[int, Any]]: ...

    def close(self) -> None: ...


class _InProcessBackend:
    """One worker in the calling process: tasks run one by one as results are asked for."""

    def __init__(self, gl_backend: str) -> None:
        ensure_gl_backend(gl_backend)
        load_triton_before_gl()
        self.worker = RolloutWorker()
        self.policy_version = 0

    def run(
        self, tasks: Iterator[tuple[int, Task]], policy: tuple[int, PolicySource] | None
    ) -> Iterator[tuple[int, Any]]:
        for index, task in tasks:
            if policy is not None and policy[0] != self.policy_version:
                self.worker.set_policy(policy[1])
                self.policy_version = policy[0]
            yield index, task(self.worker)

    def close(self) -> None:
        self.worker.close()


@dataclass
class _Process:
    process: Any  # multiprocessing.Process (spawn context)
    conn: Connection
    policy_version: int = 0
    in_flight: int = 0  # tasks sent and not yet answered, from this run or earlier ones


class _ProcessBackend:
    """One spawned process per worker, each talking to the parent over its own pipe."""

    def __init__(self, workers: int, gl_backend: str) -> None:
        ensure_gl_backend(gl_backend)  # probe once here; the workers inherit MUJOCO_GL
        context = get_context("spawn")
        self.processes: list[_Process] = []
        for _ in range(workers):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_serve, args=(child_end,), daemon=True)
            process.start()
            child_end.close()
            self.processes.append(_Process(process, parent_end))
        self.run_id = 0

    def run(
        self, tasks: Iterator[tuple[int, Task]], policy: tuple[int, PolicySource] | None
    ) -> Iterator[tuple[int, Any]]:
        self.run_id += 1
        run_id, pending, exhausted = self.run_id, 0, False
        while True:
            for worker in self.processes:
                while not exhausted and worker.in_flight < IN_FLIGHT_PER_WORKER:
                    item = next(tasks, None)
                    if item is None:
                        exhausted = True
                        break
                    self._send(worker, (run_id, item[0]), item[1], policy)
                    pending += 1
            if pending == 0:
                return
            busy = {worker.conn: worker for worker in self.processes if worker.in_flight}
            for conn in wait(list(busy)):
                worker = busy[conn]  # type: ignore[index]
                (answer_run, index), result = self._receive(worker)
                if answer_run == run_id:  # else: left over from a run the caller stopped
                    pending -= 1
                    yield index, result

    def _send(
        self,
        worker: _Process,
        tag: tuple[int, int],
        task: Task,
        policy: tuple[int, PolicySource] | None,
    ) -> None:
        if policy is not None and policy[0] != worker.policy_version:
            worker.conn.send(("policy", policy[1]))
            worker.policy_version = policy[0]
        worker.conn.send(("task", tag, task))
        worker.in_flight += 1

    def _receive(self, worker: _Process) -> tuple[tuple[int, int], Any]:
        try:
            status, tag, payload = worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(timeout=1)
            raise VismanipError(
                f"a rollout worker stopped unexpectedly (exit code {worker.process.exitcode}); "
                "run the same command again to continue"
            ) from None
        worker.in_flight -= 1
        if status == "user_error":
            raise VismanipError(payload)
        if status == "error":
            raise RuntimeError(f"a rollout worker failed:\n{payload}")
        return tag, payload

    def close(self) -> None:
        for worker in self.processes:
            try:
                worker.conn.send(("close",))
            except (BrokenPipeError, OSError):
                pass
        for worker in self.processes:
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.terminate()
            worker.conn.close()
        self.processes = []


def _apply_policy(worker: RolloutWorker, source: PolicySource) -> str | None:
    """Give the worker a new policy; the user's mistake in it (None if there is none) is
    what its next tasks answer with, as both backends' workers do."""
    try:
        worker.set_policy(source)
        return None
    except VismanipError as error:
        return str(error)


def _answer(worker: RolloutWorker, task: Task, policy_error: str | None) -> tuple[str, Any]:
    """Run a task as both backends' workers do: ("ok", result), ("user_error", message)
    for a problem the user can fix, or ("error", traceback) for a bug."""
    if policy_error is not None:
        return "user_error", policy_error
    try:
        return "ok", task(worker)
    except VismanipError as error:
        return "user_error", str(error)
    except Exception:  # reported to the caller with its traceback, not hidden
        return "error", traceback.format_exc()


def _exit_with_parent(parent_pid: int) -> None:
    """End this worker as soon as its parent is gone.

    A parent that dies without closing its runner (kill -9, the OOM killer, SIGTERM's
    default action) closes its pipe ends, but a worker learns that only at its next
    `recv`: mid-episode it runs on (a GAIL run stopped by SIGTERM left a worker busy on
    a core until it was killed by hand). The kernel's own signal for this (Linux's
    PR_SET_PDEATHSIG) fires when the *thread* that started the worker ends, which is not
    what a runner made in a short-lived thread wants; polling the parent's pid is
    portable and exact. os._exit: nothing this worker holds outlives it (results go
    nowhere, envs are rebuilt by the next run).
    """
    while True:
        time.sleep(PARENT_CHECK_S)
        if os.getppid() != parent_pid:
            os._exit(1)


def _serve(conn: Connection) -> None:
    """A worker process: apply policies and run tasks until told to close."""
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    # Ctrl-C reaches the whole process group: the parent handles it and closes us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One worker per core: Mesa's llvmpipe would otherwise start a render thread per core
    # in every worker, and they would fight over the same cores. Likewise torch threads.
    os.environ.setdefault("LP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    load_triton_before_gl()
    worker = RolloutWorker()
    policy_error: str | None = None
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:  # the parent is gone
                break
            if message[0] == "close":
                break
            if message[0] == "policy":
                policy_error = _apply_policy(worker, message[1])
                continue
            _, tag, task = message
            status, payload = _answer(worker, task, policy_error)
            conn.send((status, tag, payload))
    finally:
        # Close envs (and GL contexts) before interpreter teardown: freed later, MuJoCo's
        # EGL destructors find their modules already gone and print tracebacks.
        worker.close()


# --------------------------------------------------------------------------- ray backend


class _RayWorker:
    """The body of one Ray actor: a RolloutWorker for the actor's whole life."""

    def __init__(self) -> None:
        import torch

        torch.set_num_threads(1)
        load_triton_before_gl()
        self.worker = RolloutWorker()
        self.policy_error: str | None = None

    def set_policy(self, source: PolicySource) -> None:
        self.policy_error = _apply_policy(self.worker, source)

    def run(self, task: Task) -> tuple[str, Any]:
        return _answer(self.worker, task, self.policy_error)

    def close(self) -> None:
        self.worker.close()


@dataclass
class _Actor:
    handle: Any  # a Ray actor handle of _RayWorker
    policy_version: int = 0
    in_flight: int = 0


@dataclass
class _Submitted:
    actor: _Actor
    run_id: int
    index: int
    task: Task
    tries: int


@dataclass
class _RayBackend:
    """One Ray actor per worker (one CPU each), built once and kept for the runner's life.

    A new policy goes into Ray's object store once per version and each actor reads it
    from there before its next task. When an actor dies (its process killed, its node
    lost), its episodes are sent again to a fresh actor; an episode's result is yielded
    once, from the try that finished.
    """

    workers: int
    gl_backend: str
    address: str
    actors: list[_Actor] = field(default_factory=list)
    submitted: dict[Any, _Submitted] = field(default_factory=dict)  # ObjectRef -> what ran
    run_id: int = 0
    started_ray: bool = False
    policy_ref: tuple[int, Any] | None = None

    def __post_init__(self) -> None:
        try:
            import ray
        except ImportError:
            raise VismanipError("runner.backend=ray needs Ray: pip install -e '.[ray]'") from None
        self.ray = ray
        backend = ensure_gl_backend(self.gl_backend)  # the actors render the same way
        if not ray.is_initialized():
            # Ray runs workers at nice 15 by default: beside a GAIL run on this machine one
            # actor had not finished 10 episodes after 4 min (local: 17 s). Here they are
            # the work, so they run at the driver's priority.
            os.environ.setdefault("RAY_worker_niceness", "0")
            try:
                ray.init(
                    address=self.address or "local",  # "local": a new instance, never a running one
                    num_cpus=None if self.address else self.workers,
                    include_dashboard=False,
                    logging_level=logging.ERROR,
                    log_to_driver=False,
                    runtime_env={
                        "env_vars": {
                            "MUJOCO_GL": backend,
                            "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", backend),
                            # one render thread per actor, as in the local backend
                            "LP_NUM_THREADS": "1",
                        }
                    },
                )
            except ConnectionError as error:
                raise VismanipError(
                    f"cannot reach a Ray cluster at runner.address={self.address!r} "
                    f"({' '.join(str(error).split())[:160]})"
                ) from None
            self.started_ray = True
        self.remote_worker = ray.remote(num_cpus=1)(_RayWorker)
        self.actors = [_Actor(self.remote_worker.remote()) for _ in range(self.workers)]

    def run(
        self, tasks: Iterator[tuple[int, Task]], policy: tuple[int, PolicySource] | None
    ) -> Iterator[tuple[int, Any]]:
        from ray.exceptions import RayActorError

        self.run_id += 1
        run_id, exhausted = self.run_id, False
        retries: deque[tuple[int, Task, int]] = deque()
        while True:
            for actor in self.actors:
                while actor.in_flight < IN_FLIGHT_PER_WORKER:
                    if retries:
                        index, task, tries = retries.popleft()
                    else:
                        item = None if exhausted else next(tasks, None)
                        if item is None:
                            exhausted = True
                            break
                        (index, task), tries = item, 0
                    self._submit(actor, run_id, index, task, tries, policy)
            mine = [ref for ref, job in self.submitted.items() if job.run_id == run_id]
            if not mine:
                return
            # Wait on this run's episodes only: leftovers of a run the caller stopped
            # early finish in the background and are dropped when seen.
            (ref,), _ = self.ray.wait(mine, num_returns=1)
            job = self.submitted.pop(ref)
            job.actor.in_flight -= 1
            try:
                status, payload = self.ray.get(ref)
            except RayActorError:
                self._replace(job.actor)
                if job.tries + 1 >= MAX_TRIES:
                    raise VismanipError(
                        f"episode {job.index}: its rollout worker died {MAX_TRIES} times; "
                        "run the same command again to continue"
                    ) from None
                retries.append((job.index, job.task, job.tries + 1))
                LOG.warning(
                    "a rollout worker was lost; its episode %d runs again on a new worker",
                    job.index,
                )
                continue
            leftovers = [r for r, j in self.submitted.items() if j.run_id != run_id]
            if leftovers:
                done, _ = self.ray.wait(leftovers, num_returns=len(leftovers), timeout=0)
                for leftover in done:
                    self.submitted.pop(leftover).actor.in_flight -= 1
            if status == "user_error":
                raise VismanipError(payload)
            if status == "error":
                raise RuntimeError(f"a rollout worker failed:\n{payload}")
            yield job.index, payload

    def _submit(
        self,
        actor: _Actor,
        run_id: int,
        index: int,
        task: Task,
        tries: int,
        policy: tuple[int, PolicySource] | None,
    ) -> None:
        if policy is not None and policy[0] != actor.policy_version:
            if self.policy_ref is None or self.policy_ref[0] != policy[0]:
                self.policy_ref = (policy[0], self.ray.put(policy[1]))  # once per version
            actor.handle.set_policy.remote(self.policy_ref[1])
            actor.policy_version = policy[0]
        ref = actor.handle.run.remote(task)
        self.submitted[ref] = _Submitted(actor, run_id, index, task, tries)
        actor.in_flight += 1

    def _replace(self, dead: _Actor) -> None:
        """A fresh actor in the dead one's place (once: the dead one's other episodes fail
        the same way and are retried too); it gets the policy before its first task."""
        if dead in self.actors:
            self.actors[self.actors.index(dead)] = _Actor(self.remote_worker.remote())

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.get(actor.handle.close.remote(), timeout=30)
            except Exception:  # a dead actor has nothing left to close
                pass
            self.ray.kill(actor.handle)
        self.actors = []
        if self.started_ray:
            self.ray.shutdown()
