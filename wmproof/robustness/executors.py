"""Where a sweep's units run: this process, a local process pool (the default), or a Ray cluster.

All three take the same jobs (a function of :mod:`.work` and its arguments) and yield ``(index, result)`` as
each job finishes, so the driver writes each result the moment it exists. Nothing is home-made in between:
the pool is the standard library's :class:`multiprocessing.pool.Pool` (spawned workers: torch and fork do
not mix), and the cluster is Ray's own scheduling of ``@ray.remote`` tasks
(https://docs.ray.io/en/latest/ray-core/tasks.html), which moves the arguments and results (model files as
bytes) between nodes; no shared disk is assumed.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from ..errors import UsageError

Job = tuple[Callable[..., Any], tuple[Any, ...]]

LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: Ray's switch for its single-machine mode (ray/_private/ray_constants.py: ENABLE_RAY_CLUSTER).
SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class Executor(Protocol):
    #: How many jobs run at once (for the progress line and the driver's batching).
    slots: int

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Any]]:
        """Run ``jobs``; yield (position in ``jobs``, result) as each one finishes. A job's exception is
        raised here; jobs not yet started are cancelled."""
        ...

    def close(self) -> None:
        """Release the workers once the jobs are done."""
        ...

    def abort(self) -> None:
        """Stop now (an interrupted sweep): running jobs are lost, finished ones are already saved."""
        ...

    def describe(self) -> str: ...


class InProcess:
    """One job after another, in this process: ``--workers 1``, and what a debugger wants."""

    slots = 1

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Any]]:
        for index, (function, arguments) in enumerate(jobs):
            yield index, function(*arguments)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def describe(self) -> str:
        return "this process"


def _call(job: tuple[int, Callable[..., Any], tuple[Any, ...]]) -> tuple[int, Any]:
    index, function, arguments = job
    return index, function(*arguments)


class LocalPool:
    """``workers`` spawned processes on this machine (:class:`multiprocessing.pool.Pool`, which, unlike
    ``concurrent.futures``, can stop its workers at once when the sweep is interrupted)."""

    def __init__(self, workers: int) -> None:
        self.slots = workers
        self.pool = multiprocessing.get_context("spawn").Pool(workers)

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Any]]:
        yield from self.pool.imap_unordered(_call, [(i, f, a) for i, (f, a) in enumerate(jobs)], chunksize=1)

    def close(self) -> None:
        self.pool.close()
        self.pool.join()

    def abort(self) -> None:
        self.pool.terminate()
        self.pool.join()

    def describe(self) -> str:
        return f"a local pool of {self.slots} process{'es' if self.slots > 1 else ''}"


class RayCluster:
    """An existing Ray cluster (``auto``: the one this machine belongs to; ``ray://host:port``: a remote one
    through Ray Client; ``host:port``: a head's GCS). A head on this machine alone is started as
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start --head --port 6379`` (every server on 127.0.0.1) and joined
    with ``--ray-address 127.0.0.1:6379``. Each job is a Ray task asking for one CPU (or one GPU
    when the sweep runs on CUDA), so Ray places as many at once as the cluster has room for. Every node needs
    wmproof installed and the data set under the same data folder."""

    def __init__(self, address: str, gpu: bool = False) -> None:
        host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
        if host in LOOPBACK:
            # Ray replaces a loopback node address by the machine's own, except in its single-machine mode
            # (the one it runs on macOS and Windows), which keeps every server on 127.0.0.1; a head started
            # for 127.0.0.1 only runs in that mode, and a driver must too, or it looks for the head elsewhere.
            os.environ.setdefault(SINGLE_MACHINE, "0")
        try:
            import ray
        except ModuleNotFoundError:
            raise UsageError("--ray-address needs Ray: pip install 'wmproof[ray]'") from None
        self.ray = ray
        self.address = address
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"cannot join the Ray cluster at {address}: {first}") from None
        resources = ray.cluster_resources()
        self.gpu = gpu
        self.slots = max(1, int(resources.get("GPU" if gpu else "CPU", 1)))

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Any]]:
        ray = self.ray
        remote: dict[Callable[..., Any], Any] = {}
        stored: dict[int, Any] = {}  # a model file sent to many tasks goes into Ray's object store once

        def shared(value: Any) -> Any:
            if isinstance(value, bytes) and len(value) > 65_536:
                if id(value) not in stored:
                    stored[id(value)] = ray.put(value)
                return stored[id(value)]
            return value

        pending: dict[Any, int] = {}
        for i, (function, arguments) in enumerate(jobs):
            if function not in remote:
                remote[function] = ray.remote(num_cpus=0 if self.gpu else 1, num_gpus=1 if self.gpu else 0,
                                              max_retries=0)(function)  # fmt: skip
            pending[remote[function].remote(*[shared(a) for a in arguments])] = i
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    index = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        raise exc.as_instanceof_cause() from None
                    yield index, result
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        self.ray.shutdown()

    def abort(self) -> None:
        self.ray.shutdown()  # the driver's tasks not yet finished were cancelled when ``run`` was left

    def describe(self) -> str:
        return f"the Ray cluster at {self.address} ({self.slots} {'GPU' if self.gpu else 'CPU'} slots)"


def open_executor(workers: int, ray_address: str | None, gpu: bool = False) -> Executor:
    if ray_address is not None:
        return RayCluster(ray_address, gpu)
    if workers < 1:
        raise UsageError(f"--workers is at least 1, not {workers}")
    return InProcess() if workers == 1 else LocalPool(workers)
