"""Stage runs: a stage computed frame by frame, durable, resumable, shared by workers and
memoized per frame (see docs/runs.md).

- ``run``: StageRun (begin / put / todo / commit / abort / map) and RunStatus;
- ``memo``: memo keys (MemoKey, the key's parts) and ``code_version(fn)``;
- ``workers``: ``run.map`` over any ``concurrent.futures.Executor``;
- ``location``: what a run pickles to (its store's settings, without secrets);
- ``records``: the records and their fields, defined once;
- ``store_api``: what the Store's methods of this section do.
"""

from __future__ import annotations

from .memo import MemoKey, code_version
from .records import MemoEntry, RunRecord
from .run import RunStatus, StageRun
from .store_api import MemoStats

__all__ = ["MemoEntry", "MemoKey", "MemoStats", "RunRecord", "RunStatus", "StageRun",
           "code_version"]
