"""Commands for stage runs and the memo: runs, run show|commit|abort, memo stats|clear.

Runs are shown by short id (the shortest unique start of the id's random tail, 8+
characters) and every command takes a full id, a short id or a unique id prefix.
JSON output carries ``short_id`` beside every full id.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..render import plural
from .common import (
    TIMELINE_HELP,
    add_command,
    add_short_ids,
    age_arg,
    here,
    print_json,
    printable,
    short_ids_in_errors,
    short_ids_in_text,
    stage_name,
    timeline_ref,
    whole,
)

if TYPE_CHECKING:
    from ..runs import RunStatus, StageRun
    from ..store import Store

__all__ = ["age", "pending_nodes", "register"]



def age(when: datetime, now: datetime | None = None) -> str:
    """How long ago, in the largest whole unit: "40s", "12m", "3h", "5d"."""
    seconds = max(0.0, ((now or datetime.now(UTC)) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def cmd_runs(store: Store, args: argparse.Namespace) -> int:
    tid = timeline_ref(store, args.timeline) if args.timeline is not None else None
    runs = store.runs(tid, state=args.state)
    statuses = [r.status() for r in runs]
    if args.json:
        print_json(add_short_ids(store, [s.to_dict() for s in statuses], "run"))
        return 0
    shorts = store.short_ids([s.id for s in statuses], "run")
    if not statuses:
        # the filter said as the user gave it (a state, the timeline's short id): "no runs"
        # alone, when other runs exist, would say the store holds none
        which = f"no {args.state} runs" if args.state else "no runs"
        where = f" on timeline {store.short_id(tid, 'timeline')}" if tid else ""
        hint = (f"; {here(store, '`localckpt runs`')} lists every run" if args.state or tid
                else " (begin one with store.begin_run)")
        print(f"{which}{where}{hint}")
        return 0
    stages = {s.id: printable(s.stage) for s in statuses}
    width = max(len("STAGE"), *map(len, stages.values()))
    tshorts = store.short_ids({s.timeline_id for s in statuses}, "timeline")
    print(f"{'RUN':12}  {'TIMELINE':8}  {'STAGE':{width}}  {'STATE':10}  {'DONE/TOTAL':>11}  "
          f"{'MEMO':>6}  AGE")
    now = datetime.now(UTC)
    for s in statuses:
        done = f"{s.done + s.memo_hits}/{s.total}"
        memo = str(s.memo_hits) if s.memo else "off"
        timeline = tshorts.get(s.timeline_id, s.timeline_id)
        print(f"{shorts.get(s.id, s.id):12}  {timeline:8}  {stages[s.id]:{width}}  "
              f"{s.state + ('!' if s.orphaned else ''):10}  {done:>11}  {memo:>6}  "
              f"{age(s.created_at, now)}")
    orphaned = {s.id: s.orphaned for s in statuses if s.orphaned}  # what was pruned,
    for rid, why in zip(orphaned, short_ids_in_text(orphaned.values(), store),  # by short id
                        strict=True):
        short = shorts.get(rid, rid)
        print(f"! run {short}: {why}; it can never be committed: "
              f"{here(store, f'`localckpt run abort {short}`')} closes it")
    return 0


def _live(store: Store, checkpoint_id: str) -> bool:
    from ..errors import NotFoundError

    try:
        store.get_checkpoint(checkpoint_id)
    except NotFoundError:
        return False
    return True


def _both(record_id: str, shorts: dict[str, str]) -> str:
    """A record's short id, then its full id (as ``show`` prints them); the full id alone
    when it has no short id (a checkpoint since pruned)."""
    short = shorts.get(record_id)
    return f"{short}  ({record_id})" if short and short != record_id else record_id


def _show(run: StageRun, status: RunStatus, short: str, shorts: dict[str, str],
          abort: str, gone: bool = False) -> list[str]:
    """shorts: the short ids of the run's timeline, parent and checkpoint; abort: the
    command that aborts the run (``localckpt run abort RUN``, with --store if need be);
    gone: the checkpoint it committed was deleted since (pruned, or its timeline)."""
    rec = run.record
    lines = [
        f"run        {_both(rec.id, {rec.id: short})}",
        f"timeline   {_both(rec.timeline_id, shorts)}",
        f"parent     {_both(rec.parent_id, shorts)}",
        f"stage      {printable(rec.stage)}  version {rec.version!r}",
        f"params     {json.dumps(dict(rec.params), sort_keys=True, ensure_ascii=False)}",
        f"inputs     {', '.join(map(printable, rec.inputs)) or '-'}",
        f"memo       {'on' if rec.memo else 'off'}",
        f"state      {rec.state}" + (f"  checkpoint {_both(status.checkpoint_id, shorts)}"
                                    + ("  deleted since" if gone else "")
                                    if status.checkpoint_id else ""),
        f"frames     {status.done} written, {status.memo_hits} from the memo, {status.todo} "
        f"to do, of {status.total}",
        f"created    {rec.created_at.isoformat()} ({age(rec.created_at)} ago)",
    ]
    if status.orphaned:
        lines.append(f"orphaned   {status.orphaned}: it can never be committed; {abort} "
                     "closes it")
    elif status.todo:
        first = run.todo(limit=10)
        lines.append(f"to do      {', '.join(map(str, first))}"
                     + (", ..." if status.todo > len(first) else ""))
    return lines


def _held(store: Store, run: StageRun, sequence: int, digest: str
          ) -> tuple[str, str, bool] | None:
    """What gives an open run's frame its value, as todo() and commit() see it: (value
    hash, run id, whether that run is open), or None. The run's own value for this frame
    first (a put wins over the memo), then a memo entry, then a part of another open run
    like it; not the run's value for another frame with the same key (a run's parts
    answer other runs only: todo() lists that frame)."""
    tables = store._run_tables()
    rec = run.record
    if rec.state in ("open", "committing"):
        own = tables.parts(rec.id, [int(sequence)])
        if sequence in own:
            return own[sequence], rec.id, True
    held = tables.holder(digest, rec)
    if held is None or held[1] != rec.id or not held[2]:
        return held
    for other in tables._like(rec):  # past the run's own parts: the next holder, if any
        for _, h, found, _ in tables._keyed(other, [digest], False):
            if found == digest:
                return h, other, True
    return None


def run_ref(store: Store, ref: str) -> StageRun:
    """The run ref names; a checkpoint's or a timeline's id (or a tag) is not found,
    saying what it names instead and, for a checkpoint a run committed, that run."""
    from ..errors import InvalidInputError, NotFoundError
    from .common import _other_kind

    try:
        return store.get_run(ref)
    except (NotFoundError, InvalidInputError) as exc:
        checkpoint = _other_kind(store, ref, "checkpoint")
        timeline = None if checkpoint else _other_kind(store, ref, "timeline")
        if checkpoint is None and timeline is None:
            raise
        if checkpoint is not None:
            cshort = store.short_id(checkpoint)
            tid = store.get_checkpoint(checkpoint).timeline_id
            made = [r.id for r in store.runs(tid) if r.checkpoint_id == checkpoint]
            what = (f"a checkpoint ({cshort}), not a run; run {store.short_id(made[0], 'run')}"
                    " committed it" if made else f"a checkpoint ({cshort}), not a run")
        else:
            tid = str(timeline)
            what = f"a timeline ({store.short_id(tid, 'timeline')}), not a run"
        listing = here(store, f"`localckpt runs {store.short_id(tid, 'timeline')}`")
        raise NotFoundError(str(exc), cli=(
            f"{ref!r} is {what}; {listing} lists that timeline's runs")) from None


def _by_short_id(store: Store, run: StageRun) -> Any:
    """Errors of the run's own methods (localckpt.runs) name the run, its timeline, parent
    and checkpoint by short id on the command line, as `runs` and `tree` show them."""
    rec = run.record
    ids = {rec.id: "run", rec.timeline_id: "timeline", rec.parent_id: "checkpoint"}
    if rec.checkpoint_id:
        ids[rec.checkpoint_id] = "checkpoint"
    return short_ids_in_errors(store, ids)


def cmd_run_show(store: Store, args: argparse.Namespace) -> int:
    run = run_ref(store, args.run)
    status = run.status()
    key, held = None, None
    if args.frame is not None:
        with _by_short_id(store, run):
            key = run.memo_key(args.frame)
        held = _held(store, run, args.frame, key.digest)
    if args.json:
        d = add_short_ids(store, [status.to_dict()], "run")[0]
        rec = run.record
        d.update(params=dict(rec.params), inputs=list(rec.inputs))
        if key is not None:
            d["memo_key"] = add_short_ids(store, [{
                "sequence": args.frame, "digest": key.digest, "parts": key.parts(),
                "hit": held is not None, "value_hash": held[0] if held else None,
                "held_by": held[1] if held else None,
                "pending": held[2] if held else None}], None)[0]
        print_json(d)
        return 0
    rec = run.record
    short = store.short_id(run.id, "run")
    shorts = {**store.short_ids([rec.timeline_id], "timeline"),
              **store.short_ids([i for i in (rec.parent_id, status.checkpoint_id) if i])}
    if status.orphaned:  # what was pruned, by short id
        import attrs

        status = attrs.evolve(status, orphaned=short_ids_in_text([status.orphaned], store)[0])
    lines = _show(run, status, short, shorts, here(store, f"`localckpt run abort {short}`"),
                  gone=status.checkpoint_id is not None
                  and not _live(store, status.checkpoint_id))
    if key is not None:
        lines.append(f"memo key of frame {args.frame}: {key.digest}"
                     + (f" (held: value {held[0][:12]} from run "
                        f"{store.short_id(held[1], 'run')}"
                        + (", open: not yet a memo entry)" if held[2] else ")")
                        if held else " (not in the memo)"))
        lines += [f"  {name:8} " + (repr(value) if name == "version" else printable(
            value if isinstance(value, str) else json.dumps(  # version: as the header's
                value, sort_keys=True, ensure_ascii=False)))
            for name, value in key.parts().items()]
    print("\n".join(lines))
    return 0


def cmd_run_abort(store: Store, args: argparse.Namespace) -> int:
    run = run_ref(store, args.run)
    already = run.state == "aborted"
    with _by_short_id(store, run):
        kept = run._abort()
    short = store.short_id(run.id, "run")
    if args.json:
        print_json({"id": run.id, "short_id": short, "state": run.state,
                    "already_aborted": already, "memo_kept": kept})
    elif already:
        print(f"run {short} ({printable(run.stage)}) was already aborted; nothing changed")
    else:
        fate = short_ids_in_text([_memo_fate(run, kept)], store)[0]  # the pruned by short id
        print(f"aborted run {short} ({printable(run.stage)}); {fate}"
              + (", its parts go at the next gc" if run.done else ""))
    return 0


def cmd_run_commit(store: Store, args: argparse.Namespace) -> int:
    """The shell's run.commit(): finish a run whose workers are done (or whose commit a
    crash left half way), without a Python driver."""
    run = run_ref(store, args.run)
    already = run.state == "committed"
    with _by_short_id(store, run):
        checkpoint = run.commit(partial=args.partial)
    status = run.status()
    if args.json:
        print_json(add_short_ids(store, [{
            "id": run.id, "state": run.state, "checkpoint_id": checkpoint,
            "already_committed": already, "done": status.done,
            "memo_hits": status.memo_hits, "total": status.total}], "run")[0])
        return 0
    shorts = store.short_ids([checkpoint])
    what = "was already committed" if already else "committed"
    print(f"run {store.short_id(run.id, 'run')} ({printable(run.stage)}) {what}: checkpoint "
          f"{shorts[checkpoint]}  ({checkpoint}); {status.done} "
          f"frame{'' if status.done == 1 else 's'} put, "
          f"{status.memo_hits} from the memo, of {status.total}")
    return 0


def _memo_fate(run: StageRun, kept: bool) -> str:
    """What became of an aborted run's values, as abort() left them."""
    if not run.done:
        return "it wrote no values"
    if kept:
        return "its values stay in the memo"
    if not run.memo:
        return "it ran with memo=False, so none of its values stay in the memo"
    why = run._orphaned(run.record)
    return ("its values do not stay in the memo (" + (f"{why}, so " if why else "")
            + "its frames' memo keys cannot be made)")


def cmd_memo_stats(store: Store, args: argparse.Namespace) -> int:
    stats = store.memo_stats()
    if args.json:
        print_json(stats.to_dict())
        return 0
    print(stats.summary())
    if stats.stages:  # whole versions (two may share their first 20 characters), the
        # default one (empty) as '', so that every row has its four columns
        rows = [(printable(s.stage), printable(s.version) or "''", s) for s in stats.stages]
        width = max(len("STAGE"), *(len(stage) for stage, _, _ in rows))
        vwidth = max(len("VERSION"), *(len(version) for _, version, _ in rows))
        print(f"{'STAGE':{width}}  {'VERSION':{vwidth}}  {'ENTRIES':>8}  NEWEST")
        for stage, version, s in rows:
            print(f"{stage:{width}}  {version:{vwidth}}  {s.entries:8d}  {age(s.newest)} ago")
    return 0


def cmd_memo_clear(store: Store, args: argparse.Namespace) -> int:
    removed = store.clear_memo(stage=args.stage, older_than=args.older_than,
                               dry_run=args.dry_run)
    if args.json:
        print_json({"removed": removed, "dry_run": args.dry_run})
    elif args.dry_run:
        print(f"would remove {plural(removed, 'memo entry', 'memo entries')}; nothing "
              "removed (run again without --dry-run)")
    else:
        print(f"removed {plural(removed, 'memo entry', 'memo entries')}; the values only "
              "they kept go at the next gc (a checkpoint's stay with it; open runs' values "
              "answer until those runs are committed or aborted)")
    return 0


def pending_nodes(store: Store, timeline_id: str) -> dict[str, list[str]]:
    """parent checkpoint id -> a line per open run under it ("detect  [pending 40/100,
    12 from memo; run 1a2b3c4d]"), for the tree."""
    from ..runs.store_api import pending_runs

    nodes: dict[str, list[str]] = {}
    for s in pending_runs(store, timeline_id):
        memo = f", {s['memo_hits']} from memo" if s["memo_hits"] else ""
        what = "committing" if s["state"] == "committing" else "pending"
        nodes.setdefault(s["parent_id"], []).append(
            f"{printable(s['stage'])}  [{what} {s['done'] + s['memo_hits']}/{s['total']}"
            f"{memo}; run {s['short_id']}]")
    return nodes


def register(sub: Any) -> None:
    p = add_command(sub, "runs", "list stage runs: state, progress, memo hits", cmd_runs)
    p.add_argument("timeline", metavar="TIMELINE", nargs="?",
                   help=TIMELINE_HELP + "; only its runs (default: every timeline's)")
    p.add_argument("--state", choices=("open", "committing", "committed", "aborted"),
                   help="only runs in this state")

    group = sub.add_parser("run", help="one stage run: show, commit, abort",
                           description="One stage run, by id, short id or unique prefix.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = add_command(actions, "show", "a run's state, progress and what is left", cmd_run_show)
    p.add_argument("run", metavar="RUN", help="run id, short id or unique prefix")
    p.add_argument("--frame", metavar="N", type=whole(0),
                   help="also show this frame's memo key, part by part, and whether the memo "
                   "holds it")
    p = add_command(actions, "commit", "save a run's checkpoint, as run.commit() does",
                    cmd_run_commit)
    p.add_argument("run", metavar="RUN", help="run id, short id or unique prefix")
    p.add_argument("--partial", action="store_true",
                   help="commit the frames written so far even if some are missing")
    p = add_command(actions, "abort", "stop a run: it takes no more values", cmd_run_abort)
    p.add_argument("run", metavar="RUN", help="run id, short id or unique prefix")

    group = sub.add_parser("memo", help="the per-frame memo: stats, clear",
                           description="The per-frame memo of stage runs.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_command(actions, "stats", "memo entries per stage and version, values, bytes",
                cmd_memo_stats)
    p = add_command(actions, "clear", "delete memo entries (their values go at gc)",
                    cmd_memo_clear)
    p.add_argument("--stage", metavar="NAME", type=stage_name,
                   help="only this stage's entries")
    p.add_argument("--older-than", metavar="AGE", type=age_arg("--older-than"),
                   help="only entries older than AGE (90s, 30m, 12h, 7d, 2w) or made before "
                        "an ISO date or time (2026-11-30, UTC unless it names a zone)")
    p.add_argument("--dry-run", action="store_true", help="count them, delete nothing")
