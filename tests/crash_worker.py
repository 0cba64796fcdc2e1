"""The child process of test_crash: run one operation in a loop until killed.

Usage: python crash_worker.py JSON, where JSON holds the store's url and open() keyword
arguments, the operation, a seed and what the operation works on. Each write that
returned is reported on stdout as one flushed line ("timeline ID", "checkpoint ID",
"pruned ID", "deleted ID"), so the parent knows what must be there after the kill.
The operation "conversion" opens an old store (which converts it) and then waits.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
from worker_lines import say  # this script's directory is on sys.path

import localckpt
from localckpt.gc import collect_garbage


def _frames(rng: np.random.Generator, n: int) -> Any:
    for _ in range(n):
        yield rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def main() -> None:
    args = json.loads(sys.argv[1])
    op = args["op"]
    if op == "conversion":  # opening an old store converts it: be killed meanwhile
        say("ready")
        localckpt.open(args["url"], **args["kwargs"]).close()
        say("converted")
        while True:
            time.sleep(1)
    store = localckpt.open(args["url"], **args["kwargs"])
    rng = np.random.default_rng(args["seed"])
    state = args["state"]
    tid, root = state.get("timeline"), state.get("root")
    say("ready")
    i = 0

    def save(parent: str | None, report: bool = True) -> str:
        nonlocal i
        i += 1
        cid = store.save_stage_output(tid, parent, f"s{i % 4}",
                                      {"i": i, "pad": "x" * int(rng.integers(0, 3000))},
                                      stats={"i": i})
        if report:  # a checkpoint that must survive the kill
            say("checkpoint", cid)
        return cid

    if op == "create_timeline":
        while True:
            tl = store.create_timeline("v.mp4", "p", _frames(rng, int(rng.integers(1, 60))),
                                       codec="png")
            say("timeline", tl.id)
    elif op == "save":
        parent = root
        while True:
            parent = save(parent)
    elif op == "merge":
        a = b = save(root)
        while True:
            a, b = save(a), save(b)
            m = store.merge(a, b, "theirs")
            say("checkpoint", m)
            a = m
    elif op == "prune":
        while True:
            c = save(root, report=False)
            save(save(c, report=False), report=False)
            store.prune(c)
            say("pruned", c)
    elif op == "gc":
        while True:
            tl = store.create_timeline("v.mp4", "p", _frames(rng, 8), codec="png")
            store.save_stage_output(tl.id, None, "s", {"pad": "x" * 100})
            store.delete_timeline(tl.id)
            say("deleted", tl.id)
            collect_garbage(store, older_than=0, grace=0)
    elif op == "sync":
        src = localckpt.open(state["src_url"], **state["src_kwargs"])
        parent = state["src_root"]
        while True:
            parent = src.save_stage_output(state["src_timeline"], parent, "s", {"i": i})
            i += 1
            if i % 5 == 0:  # and now and then a timeline with frames
                src.create_timeline("w.mp4", "p", _frames(rng, 20), codec="png")
            localckpt.sync(src, store)
            say("checkpoint", parent)
    else:
        raise SystemExit(f"unknown operation {op!r}")


if __name__ == "__main__":
    main()
