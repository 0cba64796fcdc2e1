"""The child of test_runs_crash: a zygote that forks one worker per job, so that a trial
costs a fork, not a Python start (localckpt and numpy are imported once, before any
store is opened: a forked worker opens its own).

Usage: python runs_crash_worker.py, then one JSON job per line on stdin: the store's
url and open() keyword arguments, the run id and the chunk size. A worker continues the
run until it is committed and says each step on stdout (flushed): "pid N" first, then
"ready", "put FIRST" after each put returned, "commit" before the commit and "committed
ID" after it. When the worker has ended (done, failed or killed), the zygote prints
"exit N CODE" (CODE -9: killed).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

from worker_lines import say  # this script's directory is on sys.path

import localckpt


def value(seq: int) -> dict[str, Any]:
    """The stage's value of a frame (the parent computes the same)."""
    return {"detections": [{"box": [seq, seq / 3, seq * 1.5, 7.25], "label": "player",
                            "score": (seq % 10) / 10}], "pad": "x" * (seq % 50)}


def work(job: dict[str, Any]) -> None:
    say("pid", str(os.getpid()))
    store = localckpt.open(job["url"], **job["kwargs"])
    run = store.get_run(job["run"])
    size = job["chunk"]
    say("ready")
    todo = run.todo()
    for i in range(0, len(todo), size):
        chunk = todo[i:i + size]
        run.put({s: value(s) for s in chunk})
        say("put", str(chunk[0]))
    say("commit")
    say("committed", run.commit())


def _warm() -> None:
    """Import what a worker uses before forking any (each child would import it again)."""
    import importlib

    for name in ("pyarrow.parquet", "psycopg", "localckpt.shards", "localckpt.runs.run",
                 "localckpt.backends.sql.sqlite", "localckpt.backends.sql.postgres",
                 "localckpt.backends.sql.runs", "localckpt.backends.factories"):
        importlib.import_module(name)
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()  # Arrow initialises itself on first use: once, here
    pq.write_table(pa.table({"a": [1]}), buf)
    pq.ParquetFile(io.BytesIO(buf.getvalue())).read()


def main() -> None:
    _warm()
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                work(job)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        say("exit", str(pid), str(os.waitstatus_to_exitcode(status)))


if __name__ == "__main__":
    main()
