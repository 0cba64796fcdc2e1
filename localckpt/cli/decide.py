"""Commands that decide between tries: labels import|export, compare, sql."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from .common import (
    CHECKPOINT_HELP,
    TIMELINE_HELP,
    UsageError,
    add_command,
    add_output,
    add_short_ids,
    checkpoint_ref,
    nonempty,
    output_file,
    print_json,
    printable,
    prints_unicode,
    short_ids_in_errors,
    short_ids_in_text,
    stage_name,
    tag_name,
    timeline_or_newest,
    unit_fraction,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from ..store import Store

__all__ = ["METRIC_NAMES", "register"]

_CELL = 48  # widest cell of a text table
#: localckpt.evaluate.METRICS' names, written here: importing evaluate loads numpy, and
#: building the parser must not (tests/test_import_cost.py; tests/test_cli_decide.py
#: checks the two agree)
METRIC_NAMES = ("ap50", "ap", "f1", "precision", "recall", "tp", "fp", "fn")


# -- labels -------------------------------------------------------------------------------


def cmd_labels_import(store: Store, args: argparse.Namespace) -> int:
    from ..labels import import_labels

    tid = timeline_or_newest(store, args.timeline)
    parent = None if args.parent is None else checkpoint_ref(store, args.parent)
    if parent is not None and (on := store.get_checkpoint(parent).timeline_id) != tid:
        # as export --checkpoint says it: the store said "parent checkpoint <full id>
        # belongs to timeline <full id>, not <full id>"
        t = store.short_ids([on, tid], "timeline")
        raise InvalidInputError(
            f"--parent {args.parent} ({store.short_id(parent)}) is on timeline {t[on]}, not "
            f"on {t[tid]}; import onto {t[on]} (name it as TIMELINE), or name a parent on "
            f"{t[tid]}")
    result = import_labels(store, tid, args.path, args.format, stage=args.stage,
                           parent=parent, tag=args.tag, frames=args.frames,
                           force_tag=args.force_tag)
    if args.json:
        data = result.to_dict()
        data["unmatched_boxes"] = result.unmatched_boxes
        data = add_short_ids(store, [data], None)[0]  # checkpoint_ and timeline_short_id
        data["short_id"] = data["checkpoint_short_id"]  # as it was first written
        print_json(data)
    else:  # as ingest and merge name what they made: its short id, then its id
        tagged = f", tagged {args.tag}" if args.tag else ""
        print(result.summary(f"{store.short_id(result.checkpoint_id)}  "
                             f"({result.checkpoint_id}){tagged}"))
    return 0


def cmd_labels_export(store: Store, args: argparse.Namespace) -> int:
    from ..labels import export_labels

    cid = checkpoint_ref(store, args.checkpoint)
    c = store.get_checkpoint(cid)
    stage = args.stage or c.stage or "labels"
    try:
        result = export_labels(store, cid, stage, output_file(args.path, "labels export"),
                               args.format, frames=args.frames, overwrite=args.force)
    except InvalidInputError as exc:  # the stage taken by default holds no boxes
        if args.stage is None and stage in c.stage_hashes:
            exc.cli = (f"{exc.for_cli()}; --stage defaulted to {stage!r}, the stage "
                       f"{store.short_id(cid)} added; name the stage to write with --stage "
                       f"(it has: {', '.join(sorted(c.stage_hashes))})")
        raise
    if args.json:
        import attrs

        data = add_short_ids(store, [attrs.asdict(result)], None)[0]
        print_json({**data, "short_id": data["checkpoint_short_id"]})
    else:
        print(result.summary(store.short_id(cid)))
    return 0


# -- compare ------------------------------------------------------------------------------


def _check_labels_found(ev: Any, asked: list[str]) -> None:
    """--labels that no box has, in the reference or any try, are most likely typos:
    an error when every label asked is such, else a note on stderr (the API evaluates
    them as asked: rows without boxes)."""
    absent = [x for x in dict.fromkeys(asked)
              if all(t.by_label[x].boxes == 0 and t.by_label[x].reference_boxes == 0
                     for t in ev.tries)]
    if not absent:
        return
    what = ", ".join(repr(x) for x in absent)
    if len(absent) == len(dict.fromkeys(asked)):
        raise InvalidInputError(
            f"--labels {what}: no box of the reference or of any try has "
            f"{'that label' if len(absent) == 1 else 'these labels'}; check the spelling "
            "(without --labels, --per-label gives a row per label there)")
    print(f"localckpt: note: no box of the reference or of any try has label {what}",
          file=sys.stderr)


def _labels(args: argparse.Namespace) -> list[str] | None:
    labels = None if args.labels is None else [x for x in args.labels.split(",") if x]
    if labels == []:  # --labels "" or ",": not "every label", and no label to judge
        raise UsageError(f"--labels {args.labels!r} names no label; give labels separated "
                         "by commas (--labels car,person), or leave --labels out to judge "
                         "every label")
    return labels


def cmd_compare(store: Store, args: argparse.Namespace) -> int:
    reference = checkpoint_ref(store, args.against)
    if args.tries:
        tries = [checkpoint_ref(store, t) for t in args.tries]
    else:  # every try of the stage on the reference's timeline
        ref = store.get_checkpoint(reference)
        found = store.checkpoints(ref.timeline_id)
        tries = [c.id for c in found if c.stage == args.stage and c.id != reference]
        if not tries:
            stages = sorted({c.stage for c in found if c.stage and c.id != reference})
            raise InvalidInputError(
                f"timeline {store.short_id(ref.timeline_id, 'timeline')} has no checkpoint "
                f"that added stage {args.stage!r} besides the reference (stages there: "
                f"{', '.join(map(repr, stages)) or 'none'}); name the tries' stage with "
                "--stage, or name the tries to compare")
    labels = _labels(args)
    # the tries found (not named): one whose output holds no boxes is left out, said
    with short_ids_in_errors(store, dict.fromkeys([reference, *tries], "checkpoint")):
        ev = store.evaluate(tries, reference, args.stage, iou=args.iou, labels=labels,
                            reference_stage=args.reference_stage, metric=args.metric,
                            skip_unreadable=not args.tries)
    if labels:
        _check_labels_found(ev, labels)
    rows = ev.rows(per_label=args.per_label)
    shorts = store.short_ids([ev.reference, *(r["checkpoint_id"] for r in rows),
                              *(cid for cid, _ in ev.skipped)])
    whys = short_ids_in_text([why for _, why in ev.skipped], store)  # as the try is named
    for (cid, _), why in zip(ev.skipped, whys, strict=True):
        print(f"localckpt: note: try {shorts[cid]} left out: {why}", file=sys.stderr)
    if args.json:
        print_json({
            "reference": ev.reference, "reference_short_id": shorts[ev.reference],
            "reference_stage": ev.reference_stage, "stage": ev.stage, "iou": ev.iou,
            "metric": ev.metric, "frames": ev.frames, "labels": list(ev.labels),
            "rows": [{**r, "checkpoint_short_id": shorts[r["checkpoint_id"]],
                      "short_id": shorts[r["checkpoint_id"]]} for r in rows],
            "skipped": [{"checkpoint_id": cid, "checkpoint_short_id": shorts[cid],
                         "reason": why} for cid, why in ev.skipped]})
        return 0
    counted = f"{len(ev.tries)} {'try' if len(ev.tries) == 1 else 'tries'}"
    frames = f"{ev.frames:,} {'frame' if ev.frames == 1 else 'frames'}"
    print(f"stage {ev.stage!r} of {counted} against {shorts[ev.reference]} "
          f"({ev.reference_stage}), {frames}; TP at IoU >= {ev.iou:g}; best "
          f"{ev.metric} first")
    head = ["#", "TRY", "NAME", *(["LABEL"] if args.per_label else []), "PRECISION",
            "RECALL", "F1", "AP50", "AP", "BOXES"]
    body = []
    for r in rows:
        if args.per_label and r["label"] is not None:
            first = ["", "", ""]
        else:
            first = [str(r["rank"]), shorts[r["checkpoint_id"]], r["name"]]
        label = ([("(all)" if r["label"] is None else r["label"] or '""')]
                 if args.per_label else [])
        body.append([*first, *label, *("-" if r[k] is None else f"{r[k]:.3f}" for k in (
            "precision", "recall", "f1", "ap50", "ap")), f"{r['boxes']:,}"])
    _print_table(head, body, right_from=len(head) - 6)
    ignored = sum(t.ignored for t in ev.tries)
    if ignored:
        print(f"({ignored:,} boxes on frames the reference does not list were not judged)")
    return 0


def _print_table(head: list[str], body: list[list[str]], right_from: int) -> None:
    ellipsis = "…" if prints_unicode() else "..."  # asked once a table, not once a cell
    cells = [[_clip(c, ellipsis) for c in row] for row in [head, *body]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    for row in cells:
        print("  ".join(c.rjust(w) if i >= right_from else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())


def _clip(text: str, ellipsis: str) -> str:
    """A cell: stored text (labels, scenario labels: from a bundle or a peer too) with
    control characters escaped (render.printable), so none moves the cursor; cut to
    _CELL characters, ellipsis included."""
    text = printable(text.replace("\n", " "))
    return text if len(text) <= _CELL else text[:_CELL - len(ellipsis)] + ellipsis


# -- sql ----------------------------------------------------------------------------------


def _value(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    return v


def _text(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False, default=str)
    return str(_value(v))


class _Param(argparse.Action):
    """--param NAME=VALUE, repeatable: a NAME given twice is a usage error (exit 2), as
    the last value silently winning would run another query than the one asked for."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        pairs = list(getattr(namespace, self.dest) or [])
        name, sep, _ = str(values).partition("=")
        if sep and any(p.startswith(f"{name}=") for p in pairs):
            parser.error(f"argument --param: ${name} given twice; give each parameter one "
                         "value")
        setattr(namespace, self.dest, [*pairs, values])


def _params(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(f"--param takes NAME=VALUE (used as $NAME in the query), "
                                    f"not {pair!r}")
        out[name] = value
    return out


def _check_sql(args: argparse.Namespace) -> None:
    if args.json and args.csv:
        raise UsageError("--json and --csv both given: choose one output format")
    _params(args.param)


def cmd_sql(store: Store, args: argparse.Namespace) -> int:
    table: pa.Table = store.sql(args.query, _params(args.param))
    rows = table.to_pylist()
    if args.json:
        print(json.dumps([{k: _value(v) for k, v in r.items()} for r in rows],
                         indent=2, ensure_ascii=False, default=str))
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(table.column_names)
        writer.writerows([["" if v is None else _text(v) for v in r.values()] for r in rows])
    else:
        _print_table(table.column_names, [[_text(v) for v in r.values()] for r in rows],
                     right_from=len(table.column_names))
        print(f"({len(rows):,} row{'' if len(rows) == 1 else 's'})")
    return 0


# -- registration -------------------------------------------------------------------------


def register(sub: Any) -> None:
    from ..label_formats import FORMATS, FRAME_MODES

    labels = sub.add_parser("labels", help="import ground truth (COCO, YOLO, MOT) or export "
                            "detections as label files",
                            description="Ground truth in and out. See docs/deciding.md for "
                            "how frames are matched.")
    lsub = labels.add_subparsers(dest="labels_command", metavar="ACTION", required=True)
    p = add_command(lsub, "import", "save a label file as a checkpoint of a timeline",
                    cmd_labels_import)
    p.add_argument("timeline", metavar="TIMELINE", nargs="?",
                   help=TIMELINE_HELP + " (default: the newest)")
    p.add_argument("path", metavar="PATH", help="COCO .json, MOT .txt, or a YOLO directory")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="the file's format: coco (one JSON file), yolo (a directory of "
                        "<frame>.txt files), mot (one CSV text file)")
    p.add_argument("--stage", default="labels", metavar="NAME", type=stage_name,
                   help="stage name to save as (default labels)")
    p.add_argument("--parent", metavar="CHECKPOINT",
                   help=CHECKPOINT_HELP + "; the import's parent (default: the timeline's "
                        "root)")
    p.add_argument("--tag", metavar="NAME", type=tag_name, help="tag the new checkpoint")
    p.add_argument("--force-tag", action="store_true",
                   help="move --tag here if it names another checkpoint")
    p.add_argument("--frames", default="sequence", choices=FRAME_MODES,
                   help="frame numbers are timeline sequences (default) or source video "
                        "frames, matched by time")
    p = add_command(lsub, "export", "write a checkpoint's detections as a label file",
                    cmd_labels_export)
    p.add_argument("checkpoint", metavar="CHECKPOINT", help=CHECKPOINT_HELP)
    add_output(p, "path", "PATH", "file to write, a new directory for YOLO")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="the format to write: coco, yolo or mot")
    p.add_argument("--stage", metavar="NAME", type=stage_name,
                   help="stage whose boxes to write (default: the stage the checkpoint "
                   "added, a try's detect or an import's labels)")
    p.add_argument("--frames", default="sequence", choices=FRAME_MODES,
                   help="number frames by sequence (default) or by source video frame")
    p.add_argument("--force", action="store_true",
                   help="replace an existing label file (a YOLO directory must still be new "
                        "or empty)")

    p = add_command(sub, "compare", "rank tries by precision, recall, F1 and COCO AP "
                    "against a reference", cmd_compare)
    p.set_defaults(check=_labels)
    p.add_argument("tries", metavar="TRY", nargs="*",
                   help=CHECKPOINT_HELP + "; the tries to judge (default: every checkpoint "
                        "of the reference's timeline that added --stage)")
    p.add_argument("--against", required=True, metavar="REF",
                   help=CHECKPOINT_HELP + "; the reference: imported labels or any try")
    p.add_argument("--stage", default="detect", metavar="NAME", type=stage_name,
                   help="the tries' stage (default detect)")
    p.add_argument("--reference-stage", metavar="NAME", type=stage_name,
                   help="the reference's stage (default: --stage if it has it, else labels)")
    p.add_argument("--metric", default="ap50", choices=METRIC_NAMES,
                   help="rank by this (default ap50)")
    p.add_argument("--iou", type=unit_fraction, default=0.5, metavar="IOU",
                   help="IoU at which a box counts as found, for TP/FP/FN (default 0.5)")
    p.add_argument("--labels", metavar="A,B", help="evaluate these labels only")
    p.add_argument("--per-label", action="store_true", help="a row per label too")

    p = add_command(sub, "sql", "run a read-only SQL query (DuckDB) over the store",
                    cmd_sql, description="Tables: timelines, checkpoints, stage_outputs, "
                    "frames, detections (see docs/deciding.md).")
    p.set_defaults(check=_check_sql)
    p.add_argument("query", metavar="QUERY", type=nonempty("one SELECT statement"),
                   help="one SELECT statement")
    p.add_argument("--csv", action="store_true", help="print CSV (not with --json)")
    p.add_argument("--param", action=_Param, metavar="NAME=VALUE",
                   help="a value for $NAME in the query (repeatable); it is text: cast "
                        "it where a number is wanted ($NAME::INTEGER)")
