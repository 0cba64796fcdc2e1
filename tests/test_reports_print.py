"""print() of what the API returns shows what the command line says, not a repr.

A notebook user prints what a call returned: `print(localckpt.sync(a, b))` printed
`SyncReport(timelines=1, checkpoints=3, ...)` on one line, where `localckpt push` says
"copied 1 timeline, 3 checkpoints, ...". Each report's str() is its summary(), as a
Diff's and an Evaluation's are their tables; repr() keeps every field.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import localckpt
from localckpt.gc import collect_garbage
from localckpt.labels import import_labels


def test_each_report_prints_its_summary(tmp_path: Path) -> None:
    a = localckpt.open(str(tmp_path / "a"), create=True)
    b = localckpt.open(str(tmp_path / "b"), create=True)
    tl = a.create_timeline("v.mp4", "p", [np.zeros((8, 8, 3), np.uint8)] * 2, codec="png")
    cid = a.save_stage_output(tl.id, None, "detect", {"frames": {"0": {"detections": []}}})
    run = a.begin_run(tl.id, None, "n", version="1")
    run.put({0: {"n": 0}})
    reports = [localckpt.sync(a, b), a.verify(), a.memo_stats(), a.prune(cid, dry_run=True),
               collect_garbage(a, dry_run=True)]
    labels = tmp_path / "l.json"
    reports.append(a.export_labels(cid, "detect", str(labels), "coco"))
    reports.append(import_labels(a, tl.id, str(labels), "coco"))  # Store's: the id
    for report in reports:
        name = type(report).__name__
        assert str(report) == report.summary(), name
        assert f"{report}" != repr(report) and repr(report).startswith(f"{name}("), name
    assert str(reports[0]).startswith("copied 1 timeline")
    a.close()
    b.close()
