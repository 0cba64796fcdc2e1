"""``run.map``: a stage's frames computed chunk by chunk, here or on an executor's workers.

The caller lists ``todo()`` once, cuts it into chunks and makes their memo keys; each
chunk is then one task: read the chunk's frames (pixels) from the store, call
``fn(frames) -> {sequence: value}``, and ``put`` the result. The task does the reading
and the writing itself, so with an executor only the run (its store's location and id,
see ``localckpt.runs.location``), fn and the sequences travel to the worker, and a chunk
is durable as soon as its worker returns: a crash of the caller or of a worker loses at
most the chunks in flight, and ``map`` again (from any process) does only what is left.

A worker process keeps what its tasks share: one open store per location (one
connection to PostgreSQL, one S3 client) and the run's frame index, for as long as the
process lives, so the second task of a run on a worker pays only for its frames and its
put (measured on PostgreSQL + S3: ~130 ms a task of 25 frames with a store opened per
task, ~57 ms without). The tasks of a ``ThreadPoolExecutor`` use the caller's run and
store; those of another executor that runs them in this process without pickling open
and close a store of their own.

Any ``concurrent.futures.Executor`` works: ``ProcessPoolExecutor`` (fn must then be
picklable: a module-level function), Dask's ``client.get_executor()`` (cloudpickle: any
function), a thread pool. With ``executor=None`` the chunks run in this process, one
after the other. fn may leave frames out (they stay in todo()); a value for a frame it
was not given is refused (InvalidInputError).
"""

from __future__ import annotations

import json
import os
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any

import attrs

from ..arguments import integer, shown
from ..errors import InvalidInputError
from ..progress import Reporter

if TYPE_CHECKING:
    from ..store import Store
    from .location import StoreLocation
    from .memo import MemoKey
    from .run import StageRun

__all__ = ["map_run", "run_chunk"]

_KEPT_RUNS = 8  # runs whose frame index a worker keeps (the store stays open regardless)
_lock = threading.Lock()
# keyed by process id: a forked child opens its own, and leaves its parent's untouched
# (closing them, even by dropping them, would close the parent's connections)
_stores: dict[tuple[int, str], Store] = {}
_runs: OrderedDict[tuple[int, str, str], StageRun] = OrderedDict()


def _kept(run: StageRun) -> StageRun:
    """The run as this worker process keeps it between tasks (see the module docstring):
    the same store for every run of one location, the same run object for one run id."""
    from .run import StageRun as Run

    location: StoreLocation | None = run._location
    assert location is not None
    where = (os.getpid(), json.dumps(attrs.asdict(location), sort_keys=True, default=str))
    with _lock:
        found = _runs.get((*where, run.id))
        if found is not None:
            _runs.move_to_end((*where, run.id))
            return found
        store = _stores.get(where)
        if store is None or store.closed:
            store = _stores[where] = location.open()
        found = _runs[(*where, run.id)] = Run(store, run.id, location=location)
        mine = [key for key in _runs if key[0] == where[0]]
        for key in mine[:max(0, len(mine) - _KEPT_RUNS)]:
            del _runs[key]
        return found


def run_chunk(run: StageRun, fn: Callable[[list[Any]], Mapping[int, Any]],
              sequences: list[int], keys: Mapping[int, MemoKey] | None,
              close: bool = True) -> int:
    """One task: frames of sequences -> fn -> put. Returns the frames written. A run
    unpickled in a worker uses the store and run this process keeps (see the module
    docstring); one made in this process closes the store it opened when the task ends
    (close)."""
    if run._unpickled:
        run, close = _kept(run), False
    try:
        values = fn(run._frames(sequences))
        if not isinstance(values, Mapping):
            raise InvalidInputError(
                f"the stage function returned a {type(values).__name__}; it must return a "
                "mapping of sequence -> value for the frames it was given")
        return run._put(values, keys, allowed=sequences)
    finally:
        if close:
            run.close()


def map_run(run: StageRun, fn: Callable[[list[Any]], Mapping[int, Any]], executor: Any,
            chunk_size: int, progress: Any) -> int:
    """See StageRun.map and the module docstring."""
    if not callable(fn):
        raise InvalidInputError(f"fn must be a function of a list of frames, not {shown(fn)}")
    chunk_size = integer(chunk_size, "chunk_size", low=1)
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise InvalidInputError("executor must be a concurrent.futures.Executor (something "
                                f"with submit), not {type(executor).__name__}")
    todo = run.todo()
    if not todo:
        return 0
    chunks = [todo[i:i + chunk_size] for i in range(0, len(todo), chunk_size)]
    reporter = Reporter(progress, f"{run.stage} frames", unit="frame", show_phase=False)
    reporter.start(len(todo))
    try:
        if executor is None:
            return _here(run, fn, chunks, reporter, len(todo))
        return _there(run, fn, chunks, executor, reporter, len(todo))
    finally:
        reporter.close()


def _here(run: StageRun, fn: Callable[..., Any], chunks: Sequence[list[int]],
          reporter: Reporter, total: int) -> int:
    written = seen = 0
    for chunk in chunks:
        written += run_chunk(run, fn, chunk, run._keys_for(chunk), close=False)
        seen += len(chunk)
        reporter.step("frames", seen, total, len(chunk))
    return written


def _there(run: StageRun, fn: Callable[..., Any], chunks: Sequence[list[int]], executor: Any,
           reporter: Reporter, total: int) -> int:
    from .location import StoreLocation
    from .run import StageRun as Run

    # a thread of this process shares the caller's run and store (a memory:// store
    # too); elsewhere one run object per task, which a worker swaps for the one it keeps
    here = isinstance(executor, ThreadPoolExecutor)
    location = None if here else StoreLocation.of(run.store)
    futures: dict[Future[int], int] = {}
    try:
        for chunk in chunks:
            task = run if here else Run(None, run.id, location=location)
            futures[executor.submit(run_chunk, task, fn, chunk, run._keys_for(chunk))] = \
                len(chunk)
        written = seen = 0
        for fut in as_completed(futures):
            written += _result(fut, fn)
            seen += futures[fut]
            reporter.step("frames", seen, total, futures[fut])
        return written
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise


def _result(fut: Future[int], fn: Callable[..., Any]) -> int:
    """A task's result; a fn the executor could not send to its workers (a lambda or a
    nested function, by a process pool's pickle) is InvalidInputError saying what to
    do, where pickle's own error named neither fn nor a remedy."""
    try:
        return fut.result()
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        if "pickle" not in str(exc):
            raise
        raise InvalidInputError(
            f"fn {getattr(fn, '__qualname__', shown(fn))} could not be sent to the "
            f"executor's worker processes ({type(exc).__name__}: {exc}): a process pool "
            "sends fn by pickle, which takes a function defined at a module's top level, "
            "not a lambda or a function inside another. Define it so, or use Dask's "
            "executor (cloudpickle), a ThreadPoolExecutor or executor=None") from exc
