"""Deciding between tries: ``store.evaluate`` of 10 tries against labels (beside
pycocotools doing the same work), and ``store.sql`` over many tries (the first query,
which flattens every output into its derived Parquet file, and later ones).

Outputs: N frames x 5 boxes per try (3 labels); each try jitters the labels' boxes,
drops some and adds false positives, so every try differs (one derived file each).
"""

from __future__ import annotations

import contextlib
import io
import time
from typing import Any

import numpy as np

from ..configs import StoreConfig
from ..model import Context, Goal, Sample, Subject, Workload
from ._common import cached, shared_store

__all__ = ["EVALUATE", "SQL_FIRST", "SQL_LATER"]

BOXES = 5
LABELS = ("car", "person", "ball")
TRIES = 10
SQL_FRAMES, SQL_QUICK_FRAMES = 10_000, 300
PYCOCO = "pycocotools, one of the tries (COCO() + loadRes + evaluate + accumulate)"
IN_MEMORY = "ours, outputs in memory (evaluate_outputs)"
BUDGET_EVAL, BUDGET_SQL = "budget 3 s", "budget 0.5 s"
COUNT = """SELECT c.id, d.label, count(*) AS boxes
FROM detections d JOIN stage_outputs s ON s.hash = d.hash
JOIN checkpoints c ON c.id = s.checkpoint_id
WHERE s.stage = 'detect' AND s.added_here GROUP BY ALL"""
LATE = """SELECT c.id, count(*) AS people
FROM detections d JOIN stage_outputs s ON s.hash = d.hash
JOIN checkpoints c ON c.id = s.checkpoint_id
WHERE s.stage = 'detect' AND s.added_here AND d.label = 'person'
  AND d.timestamp >= (SELECT max(timestamp) / 2 FROM frames) GROUP BY ALL"""


def _labels(frames: int) -> dict[str, Any]:
    rng = np.random.default_rng(frames)
    xy = rng.uniform(0, 1100, (frames, BOXES, 2))
    wh = rng.uniform(20, 160, (frames, BOXES, 2))
    lab = rng.integers(0, len(LABELS), (frames, BOXES))
    return {"frames": [{"sequence": s, "detections": [
        {"box": [float(xy[s, k, 0]), float(xy[s, k, 1]), float(xy[s, k, 0] + wh[s, k, 0]),
                 float(xy[s, k, 1] + wh[s, k, 1])], "label": LABELS[lab[s, k]]}
        for k in range(BOXES)]} for s in range(frames)]}


def _try(labels: dict[str, Any], k: int) -> dict[str, Any]:
    """Try k: every label box jittered (more with k), one in five replaced by a false
    positive elsewhere; scores random. Still 5 boxes per frame."""
    rng = np.random.default_rng(1000 + k)
    frames = labels["frames"]
    n = len(frames) * BOXES
    jitter = rng.normal(0, 2 + k, (n, 4))
    scores = rng.random(n)
    wrong = rng.random(n) < 0.2
    out = []
    i = 0
    for f in frames:
        dets = []
        for d in f["detections"]:
            b = d["box"]
            if wrong[i]:
                box = [b[0] + 300.0, b[1] + 150.0, b[2] + 300.0, b[3] + 150.0]
            else:
                x1, y1 = b[0] + jitter[i, 0], b[1] + jitter[i, 1]
                box = [x1, y1, max(x1 + 1, b[2] + jitter[i, 2]), max(y1 + 1, b[3] + jitter[i, 3])]
            dets.append({"box": [float(v) for v in box], "label": d["label"],
                         "score": float(scores[i])})
            i += 1
        out.append({"sequence": f["sequence"], "detections": dets})
    return {"model": f"try-{k}", "frames": out}


def _timeline(store: Any, frames: int) -> str:
    tiny = np.zeros((8, 8, 3), np.uint8)
    return str(store.create_timeline("bench.mp4", "decide", (tiny for _ in range(frames)),
                                     fps=10.0, codec="png").id)


def _drop_derived(store: Any) -> None:
    """Forget every derived file and the query engine: the next call starts cold."""
    from localckpt import derived
    from localckpt.query import _ATTR

    store.objects.delete(store.objects.list(derived.PREFIX))
    store.__dict__.pop(_ATTR, None)


# -- evaluate ---------------------------------------------------------------------------------


def _eval_store(ctx: Context, cfg: StoreConfig, frames: int) -> tuple[Any, str, list[str]]:
    store, _ = shared_store(ctx, cfg, "decide_eval")

    def make() -> tuple[str, list[str]]:
        labels = _labels(frames)
        tid = _timeline(store, frames)
        gt = store.save_stage_output(tid, None, "labels", labels)
        tries = [store.save_stage_output(tid, None, "detect", _try(labels, k),
                                         is_scenario=True, scenario_label=f"try {k}")
                 for k in range(TRIES)]
        return gt, tries

    gt, tries = cached(ctx, f"decide_eval:{cfg.name}:{frames}", make)
    return store, gt, tries


def _pycocotools(tries: list[dict[str, Any]], labels: dict[str, Any]) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cat = {n: i + 1 for i, n in enumerate(LABELS)}
    images = [{"id": f["sequence"] + 1} for f in labels["frames"]]
    anns = [{"id": j, "image_id": f["sequence"] + 1,
             "category_id": cat[d["label"]], "iscrowd": 0,
             "bbox": [d["box"][0], d["box"][1], d["box"][2] - d["box"][0],
                      d["box"][3] - d["box"][1]],
             "area": (d["box"][2] - d["box"][0]) * (d["box"][3] - d["box"][1])}
            for j, (f, d) in enumerate(((f, d) for f in labels["frames"]
                                        for d in f["detections"]), 1)]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": i, "name": n} for n, i in cat.items()]}
        gt.createIndex()
        for out in tries:
            res = [{"image_id": f["sequence"] + 1, "category_id": cat[d["label"]],
                    "score": d["score"], "bbox": [d["box"][0], d["box"][1],
                                                  d["box"][2] - d["box"][0],
                                                  d["box"][3] - d["box"][1]]}
                   for f in out["frames"] for d in f["detections"]]
            ev = COCOeval(gt, gt.loadRes(res), "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()


def _build_evaluate(ctx: Context, frames: int) -> list[Subject]:
    from localckpt.evaluate import evaluate_outputs

    units = float(TRIES * frames * BOXES)
    subjects = []
    for cfg in ctx.configs:
        store, gt, tries = _eval_store(ctx, cfg, frames)

        def first(store: Any = store, gt: str = gt, tries: list[str] = tries) -> Sample:
            _drop_derived(store)
            found: list[Any] = []
            sample = _timed(lambda: found.append(store.evaluate(tries, gt)), units)
            sample.extra["best AP50"] = found[0].rows()[0]["ap50"]
            return sample

        def later(store: Any = store, gt: str = gt, tries: list[str] = tries) -> Sample:
            store.evaluate(tries[:1], gt)  # the files exist (made by the first run)
            return _timed(lambda: store.evaluate(tries, gt), units)

        subjects.append(Subject(f"{cfg.name} evaluate, first (parsed from JSON)", first,
                                config=cfg.name))
        subjects.append(Subject(f"{cfg.name} evaluate, later (derived Parquet read)", later,
                                config=cfg.name))
    labels = cached(ctx, f"decide_labels:{frames}", lambda: _labels(frames))
    outputs = cached(ctx, f"decide_tries:{frames}",
                     lambda: [_try(labels, k) for k in range(TRIES)])
    subjects.append(Subject(IN_MEMORY, lambda: _timed(lambda: evaluate_outputs(
        {str(k): o for k, o in enumerate(outputs)}, labels), units), role="reference"))
    try:
        import pycocotools  # noqa: F401

        def peer() -> Sample:  # one try: all ten cost 10x (26 s of CPU per try at 10,000)
            sample = _timed(lambda: _pycocotools(outputs[:1], labels), units / TRIES)
            sample.extra["10 tries, s (10x)"] = sample.seconds * TRIES
            return sample

        subjects.append(Subject(PYCOCO, peer, role="peer"))
    except ImportError:
        ctx.note("peer pycocotools skipped: not installed (pip install pycocotools)")
    subjects.append(Subject(BUDGET_EVAL, lambda: Sample(3.0, units=units), role="reference"))
    return subjects


def _timed(fn: Any, units: float) -> Sample:
    """Wall time, and the CPU time this process used (what a loaded machine inflates
    least: the report's load average says how shared the 2 cores were)."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return Sample(time.perf_counter() - t0, units=units,
                  extra={"CPU s": time.process_time() - c0})


EVALUATE = Workload(
    name="evaluate",
    title=f"store.evaluate of {TRIES} tries x N frames x {BOXES} boxes against labels",
    unit="boxes", size_name="frames", sizes=(1000, 3000, 10_000),
    quick_sizes=(50, 200), reps=2, quick_reps=1, build=_build_evaluate,
    baseline=PYCOCO,
    baseline_for=lambda label: BUDGET_EVAL if "evaluate, first" in label else None,
    goals=(Goal("evaluate of 10 tries x 10,000 frames x 5 boxes < 3 s (first run)",
                lambda s: "evaluate, first" in s, "rate", 1.0,
                against=lambda _: BUDGET_EVAL),),
    notes=("'first': no derived file exists, so every output is loaded from the catalog, "
           "parsed and flattened (and its derived Parquet file written); 'later': the files "
           "exist and are read instead. pycocotools gets the outputs already in memory as "
           "Python objects; its time is the conversion to COCO dicts, COCO(), loadRes, "
           "evaluate and accumulate of ONE of the ten tries (ten take ten times as long: "
           "about 26 s of CPU per try at 10,000 frames here), so its row's cost is per try "
           "and its details give ten times it. Ratios are rates (boxes judged per second), "
           "so they compare the same work.",),
)


# -- sql ----------------------------------------------------------------------------------------


def _sql_store(ctx: Context, cfg: StoreConfig, tries: int) -> Any:
    """A store per configuration and size holding exactly that many tries (the first and
    later query workloads share it)."""
    frames = SQL_QUICK_FRAMES if ctx.quick else SQL_FRAMES
    store, _ = shared_store(ctx, cfg, f"decide_sql_{tries}")

    def make() -> None:
        labels = _labels(frames)
        tid = _timeline(store, frames)
        for k in range(tries):
            store.save_stage_output(tid, None, "detect", _try(labels, k), is_scenario=True,
                                    scenario_label=f"try {k}")

    cached(ctx, f"decide_sql:{cfg.name}:{tries}", make)
    return store


def _check(table: Any, tries: int) -> dict[str, float]:
    """What the answer says (the tries it saw and the boxes it counted): a query that
    saw fewer tries than the store holds would be fast for the wrong reason."""
    return {"tries seen": float(len(set(table.column("id").to_pylist()))),
            "counted": float(sum(table.column(table.column_names[-1]).to_pylist())),
            "tries in store": float(tries)}


def _query(store: Any, query: str, tries: int) -> Sample:
    found: list[Any] = []
    sample = _timed(lambda: found.append(store.sql(query)), 1.0)
    sample.extra.update(_check(found[0], tries))
    return sample


def _build_sql(ctx: Context, tries: int, later: bool) -> list[Subject]:
    subjects = []
    for cfg in ctx.configs:
        store = _sql_store(ctx, cfg, tries)
        if later:
            store.sql(COUNT)  # the derived files exist and the engine is warm

            def count(store: Any = store) -> Sample:
                return _query(store, COUNT, tries)

            def late(store: Any = store) -> Sample:
                return _query(store, LATE, tries)

            subjects.append(Subject(f"{cfg.name} boxes per try and label", count,
                                    config=cfg.name))
            subjects.append(Subject(f"{cfg.name} people per try, second half (timestamps)",
                                    late, config=cfg.name))
        else:
            def first(store: Any = store) -> Sample:
                _drop_derived(store)
                return _query(store, COUNT, tries)

            subjects.append(Subject(f"{cfg.name} first query (flattening every output)",
                                    first, config=cfg.name))
    if later:
        subjects.append(Subject(BUDGET_SQL, lambda: Sample(0.5), role="reference"))
    return subjects


_SQL_NOTE = (f"Tries of {SQL_FRAMES:,} frames x {BOXES} boxes ({SQL_QUICK_FRAMES:,} with "
             "--quick) on one timeline. The first query finds no derived file and flattens "
             "every live output into one (and writes it); later queries read the files "
             "through DuckDB (local files directly, other object stores through fsspec).")

SQL_FIRST = Workload(
    name="sql_first",
    title="store.sql, the first query over N tries (every output flattened)",
    unit="queries", size_name="tries", sizes=(10, 30, 100), quick_sizes=(2, 4), reps=2,
    quick_reps=1, build=lambda ctx, n: _build_sql(ctx, n, later=False), notes=(_SQL_NOTE,),
    cost_label="s per query",
)

SQL_LATER = Workload(
    name="sql_later",
    title="store.sql, later queries over N tries (derived files read)",
    unit="queries", size_name="tries", sizes=(10, 30, 100), quick_sizes=(2, 4), reps=5,
    quick_reps=2, build=lambda ctx, n: _build_sql(ctx, n, later=True),
    baseline=BUDGET_SQL,
    goals=(Goal("a count of boxes per try and label < 0.5 s",
                lambda s: s.endswith("boxes per try and label"), "rate", 1.0,
                against=lambda _: BUDGET_SQL),),
    notes=(_SQL_NOTE, "The timestamp query joins each box to its frame's time (a correlated "
           "lookup DuckDB drops when a query does not use the column)."),
    cost_label="s per query",
)
