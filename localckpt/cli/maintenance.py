"""Commands that create, check and tidy a store: init, verify, rm, prune, retain, tag,
untag, tags, gc."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, NotFoundError
from ..store import Store
from ..types import Tag
from .common import (
    CHECKPOINT_HELP,
    EXIT_ERROR,
    EXIT_OK,
    TIMELINE_HELP,
    TIMELINE_ID_HELP,
    UsageError,
    add_command,
    add_short_ids,
    age_arg,
    bare_name,
    checkpoint_ref,
    here,
    print_json,
    print_report,
    seconds_arg,
    short_id_map,
    short_ids_in_errors,
    short_ids_in_text,
    tag_name,
    timeline_ref,
    whole,
)

if TYPE_CHECKING:
    from ..maintenance.reports import PruneReport

__all__ = ["register"]

def _new_bare_name(args: argparse.Namespace, _: Any) -> None:
    """Before init opens anything: whether --store is a bare name (no '/' or ':') that
    names nothing here yet, which init makes a new directory of, as `git init tem` does."""
    args.new_bare_name = bare_name(args.store)


def _near_remote_note(args: argparse.Namespace) -> None:
    """`--store tem init` with a remote 'team' configured made ./tem, as asked, where
    the remote was most likely meant: a one-line note on stderr names it (after the
    store is made; the config file is read only for a new store of a bare name)."""
    if not getattr(args, "new_bare_name", False):
        return
    import difflib

    from ..config import remotes

    names = [r.name for r in remotes()]
    near = difflib.get_close_matches(args.store, names, n=1)
    if near and args.store not in names:  # a remote's own name: init opened the remote
        print(f"note: {args.store!r} is a new store here; did you mean the remote "
              f"{near[0]!r}?", file=sys.stderr)


def cmd_init(store: Store, args: argparse.Namespace) -> int:
    if args.json:
        print_json({"store": store.url, "catalog": store.catalog.describe(),
                    "objects": store.objects.describe()})
    else:
        print(f"localckpt store ready at {store.url} (objects in {store.objects.describe()})")
    _near_remote_note(args)
    return 0


def cmd_verify(store: Store, args: argparse.Namespace) -> int:
    tid = timeline_ref(store, args.timeline) if args.timeline is not None else None
    report = store.verify(tid, storage=True if args.all else None)
    if args.json:
        import attrs

        data = attrs.asdict(report)
        data["ok"] = report.ok
        for problem, d in zip(report.problems, data["problems"], strict=True):
            d["collectable"] = problem.collectable
        print_json(data)
    else:
        print(report.summary())
        messages = short_ids_in_text((p.message for p in report.problems), store)
        for p, message in zip(report.problems, messages, strict=True):
            tag = "leftover" if p.collectable else "PROBLEM "
            print(f"  {tag} {p.kind}: {message}")
        if report.collectable:
            print(f"run {here(store, '`localckpt gc`')} to remove the leftovers")
    return EXIT_OK if report.ok else EXIT_ERROR


def _print_deletion(store: Store, report: PruneReport, args: argparse.Namespace,
                    what: str) -> None:
    shorts = short_id_map(store, {"timeline": report.timelines,
                                  "checkpoint": report.checkpoints,
                                  "run": report.closed_runs}) if args.json else {}
    print_report(report, args, what, short_ids=shorts)
    if not args.json:
        _print_closed(store, report.closed_runs, report.dry_run)


def _print_closed(store: Store, runs: tuple[str, ...], dry_run: bool) -> None:
    """A line per stage run a deletion (or gc) closed: what it was, what becomes of it."""
    if not runs:
        return
    shorts = store.short_ids(runs, "run")
    verb = "would close" if dry_run else "closed"
    for run_id in runs:
        print(f"  {verb} run {shorts.get(run_id, run_id)}: what it depended on is deleted; "
              "its parts go at the next gc")


def cmd_rm(store: Store, args: argparse.Namespace) -> int:
    _refuse_tag_for_timeline(store, args.timeline)
    report = store.delete_timeline(timeline_ref(store, args.timeline), dry_run=args.dry_run)
    _print_deletion(store, report, args, "rm")
    return 0


def _refuse_tag_for_timeline(store: Store, ref: str) -> None:
    """`rm best` deleted best's whole timeline (a tag names its checkpoint's timeline
    where a timeline is asked for), where `docker rm`, `git tag -d` or `prune best` habits
    expect the tag or that try to go: rm takes the timeline's own id."""
    from ..maintenance.tags import is_tag_name

    tagged = store.tag_target(ref) if is_tag_name(ref) else None
    if tagged is None:
        return
    tid = store.get_checkpoint(tagged).timeline_id
    short = store.short_id(tid, "timeline")
    raise InvalidInputError(
        f"{ref!r} is a tag (of checkpoint {store.short_id(tagged)}, on timeline {short}); "
        "rm deletes a whole timeline and takes the timeline's id, not a tag: nothing was "
        f"deleted. Delete that checkpoint and what derives from it with "
        f"{here(store, f'`localckpt prune {ref}`')}, remove the tag with "
        f"{here(store, f'`localckpt untag {ref}`')}, or the whole timeline with "
        f"{here(store, f'`localckpt rm {short}`')}")


def cmd_prune(store: Store, args: argparse.Namespace) -> int:
    """Every CKPT is resolved and checked (a dry run) before anything is deleted, so a
    mistyped or refused one deletes nothing; then each is pruned in turn (one commit
    each), skipping those an earlier one took with it. One report for all of them."""
    ids = list(dict.fromkeys(checkpoint_ref(store, ref) for ref in args.checkpoints))
    with short_ids_in_errors(store, {}, every="checkpoint"):  # its refusals name only those
        for cid in ids:
            store.prune(cid, dry_run=True, force=args.force)
    reports: list[PruneReport] = []
    gone: set[str] = set()
    for cid in ids:
        if cid not in gone:
            reports.append(store.prune(cid, dry_run=args.dry_run, force=args.force))
            gone.update(reports[-1].checkpoints)
    _print_deletion(store, _combined(reports), args, "prune")
    return 0


def _combined(reports: list[PruneReport]) -> PruneReport:
    import attrs

    if len(reports) == 1:
        return reports[0]
    return attrs.evolve(
        reports[0],
        checkpoints=tuple(sorted({c for r in reports for c in r.checkpoints})),
        tags=tuple(sorted({t for r in reports for t in r.tags})),
        outputs=sum(r.outputs for r in reports), objects=sum(r.objects for r in reports),
        bytes=sum(r.bytes for r in reports), tombstones=sum(r.tombstones for r in reports),
        records=sum(r.records for r in reports),
        output_bytes=sum(r.output_bytes for r in reports),
        object_bytes=sum(r.object_bytes for r in reports),
        closed_runs=tuple(sorted({r for report in reports for r in report.closed_runs})),
    )


def _check_retain(args: argparse.Namespace) -> None:
    """A rule is needed: without one, retain would delete every checkpoint but the root
    and the tagged ones (the API refuses it too; said here as bad usage, exit 2)."""
    if args.keep_last is None and not args.keep_label and args.newer_than is None:
        raise UsageError("retain needs a rule: --keep-last N, --keep-label LABEL or "
                         "--newer-than AGE (without one it would delete every checkpoint "
                         "but the root and the tagged ones)")


def cmd_retain(store: Store, args: argparse.Namespace) -> int:
    report = store.retain(
        timeline_ref(store, args.timeline), keep_last=args.keep_last,
        keep_labels=args.keep_label or (),
        newer_than=args.newer_than,
        keep_tagged=not args.no_keep_tagged, dry_run=args.dry_run,
    )
    _print_deletion(store, report, args, "retain")
    return 0


def _tag_dicts(store: Store, tags: list[Any]) -> list[dict[str, Any]]:
    from ..schema import to_dict

    return add_short_ids(store, [to_dict(g) for g in tags], None)


def _print_tag(store: Store, g: Any, args: argparse.Namespace, text: str) -> int:
    if args.json:
        print_json(_tag_dicts(store, [g])[0])
    else:
        print(text)
    return 0


def _check_tag(args: argparse.Namespace) -> None:
    """CKPT and NAME, or neither (`localckpt tag` lists the tags, as `git tag` does)."""
    if args.name is None and (args.checkpoint is not None or args.force):
        raise UsageError("tag needs CKPT and NAME: the checkpoint, then the tag's name "
                         "(`localckpt tag` alone lists the tags)")


def cmd_tag(store: Store, args: argparse.Namespace) -> int:
    if args.checkpoint is None:  # as `git tag`: the list (every timeline's tags)
        return cmd_tags(store, args)
    try:
        cid = checkpoint_ref(store, args.checkpoint)
    except NotFoundError as exc:
        from ..maintenance.tags import swapped

        raise swapped(store, exc, args.checkpoint, args.name) from None
    before = store.tag_target(args.name) if args.force else None
    g = store.tag(cid, args.name, force=args.force)
    short = store.short_id(g.checkpoint_id)
    moved = f" (moved from {store.short_id(before)})" if before not in (None, cid) else ""
    return _print_tag(store, g, args, f"tagged {short} as {g.name}{moved}")


def cmd_untag(store: Store, args: argparse.Namespace) -> int:
    g = store.untag(args.name)
    return _print_tag(store, g, args,
                      f"removed tag {g.name} (was on {store.short_id(g.checkpoint_id)})")


def cmd_tags(store: Store, args: argparse.Namespace) -> int:
    tags = store.tags(timeline_ref(store, args.timeline) if args.timeline is not None
                      else None)
    if args.json:
        print_json(_tag_dicts(store, tags))
        return 0
    if not tags:
        print("no tags")
        return 0
    checkpoints = store.short_ids([g.checkpoint_id for g in tags])
    timelines = store.short_ids([g.timeline_id for g in tags], "timeline")
    width = max(len("TAG"), *(len(g.name) for g in tags))
    cw = max(len("CHECKPOINT"), *(len(v) for v in checkpoints.values()))
    tw = max(len("TIMELINE"), *(len(v) for v in timelines.values()))
    print(f"{'TAG':{width}}  {'CHECKPOINT':{cw}}  {'TIMELINE':{tw}}  CREATED")
    for g in tags:
        created = g.created_at.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{g.name:{width}}  {checkpoints[g.checkpoint_id]:{cw}}  "
              f"{timelines[g.timeline_id]:{tw}}  {created}")
    _say_hidden_short_ids(store, tags)
    return 0


def _say_hidden_short_ids(store: Store, tags: list[Tag]) -> None:
    """A note on stderr for each tag listed whose name hides a short id of another live
    record (a transfer's or an older store's: Store.tag refuses such names now)."""
    from ..refs import hidden_by_tags

    for name, kind, rid in hidden_by_tags(store, tags):
        short = store.short_id(rid, kind)
        print(f"localckpt: note: tag {name!r} is spelled like the short id of {kind} "
              f"{short}, so {name!r} names the tag; name the {kind} by its full id "
              f"({rid}), or rename the tag (`localckpt tag {name} NEW`, then `localckpt "
              f"untag {name}`)", file=sys.stderr)


def cmd_gc(store: Store, args: argparse.Namespace) -> int:
    from ..gc import collect_garbage

    report = collect_garbage(store, older_than=args.older_than, dry_run=args.dry_run)
    if args.json:
        import attrs

        shorts = short_id_map(store, {"timeline": report.deleted_timelines,
                                      "run": (*report.closed_runs, *report.open_runs)})
        print_json({**attrs.asdict(report), "short_ids": shorts})
        return 0
    print(report.summary())
    listed = (*report.deleted_timelines, *report.orphan_timelines)
    shorts = store.short_ids(listed, "timeline") if listed else {}
    for tid in report.deleted_timelines:  # each said for what it is (they were bare ids)
        print(f"  frames of deleted timeline {shorts.get(tid, tid)}  ({tid})")
    for tid in report.orphan_timelines:
        print(f"  frames of unreferenced timeline {shorts.get(tid, tid)}  ({tid}): a write "
              "that never committed")
    _print_closed(store, report.closed_runs, report.dry_run)
    if report.open_runs:
        print(f"  open runs keep their parts (an abandoned one's too): "
              f"{here(store, '`localckpt runs --state open`')} lists them, "
              f"{here(store, '`localckpt run abort RUN`')} closes one, and the next gc "
              "frees its parts")
    return 0


def register(sub: Any) -> None:
    p = add_command(sub, "init", "create a store (at --store, else the default store)", cmd_init,
                    creates=True)
    p.set_defaults(prepare=_new_bare_name)

    p = add_command(sub, "verify", "check every byte and link; exit 1 on damage", cmd_verify)
    p.add_argument("timeline", metavar="TIMELINE", nargs="?",
                   help=TIMELINE_HELP + "; only this one (default: the whole store)")
    p.add_argument("--all", action="store_true",
                   help="with TIMELINE, also read the whole catalog's own storage")

    p = add_command(sub, "rm", "delete a timeline with its tree, tags and frames", cmd_rm)
    p.add_argument("timeline", metavar="TIMELINE", help=TIMELINE_ID_HELP)
    p.add_argument("--dry-run", action="store_true", help="report, delete nothing")

    p = add_command(sub, "prune", "delete checkpoints and everything below them", cmd_prune)
    p.add_argument("checkpoints", metavar="CKPT", nargs="+",
                   help=CHECKPOINT_HELP + "; several "
                        "are checked first, so a bad one deletes nothing (a dry run counts "
                        "what each would free alone)")
    p.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    p.add_argument("--force", action="store_true",
                   help="also when a kept merge names a pruned checkpoint as merged_from")

    p = add_command(sub, "retain", "prune what no rule keeps (the root and tags stay)",
                    cmd_retain)
    p.set_defaults(check=_check_retain)
    p.add_argument("timeline", metavar="TIMELINE", help=TIMELINE_HELP)
    p.add_argument("--keep-last", type=whole(0), metavar="N",
                   help="keep the N most recent checkpoints (and what they derive from)")
    p.add_argument("--keep-label", action="append", metavar="LABEL",
                   help="keep checkpoints with this scenario label (repeatable)")
    p.add_argument("--newer-than", metavar="AGE", type=age_arg("--newer-than"),
                   help="keep checkpoints newer than 7d / 12h / 30m, or an ISO date (UTC)")
    p.add_argument("--no-keep-tagged", action="store_true",
                   help="let tagged checkpoints go too")
    p.add_argument("--dry-run", action="store_true", help="report, delete nothing")

    p = add_command(sub, "tag", "name a checkpoint (usable wherever an id is); alone, list "
                    "the tags", cmd_tag)
    p.add_argument("checkpoint", metavar="CKPT", nargs="?",
                   help=CHECKPOINT_HELP)
    p.add_argument("name", metavar="NAME", type=tag_name, nargs="?",
                   help="letters, digits, '.', '_', '-'")
    p.add_argument("--force", action="store_true",
                   help="move the tag here if it names another checkpoint")
    p.set_defaults(check=_check_tag, timeline=None)  # timeline: for cmd_tags

    p = add_command(sub, "untag", "remove a tag", cmd_untag)
    p.add_argument("name", metavar="NAME", type=tag_name,
                   help="the tag to remove (`localckpt tags` lists them); its checkpoint "
                        "stays")

    p = add_command(sub, "tags", "list tags", cmd_tags)
    p.add_argument("timeline", metavar="TIMELINE", nargs="?",
                   help=TIMELINE_HELP + "; only its tags (default: every timeline's)")

    p = add_command(sub, "gc", "free what nothing live refers to: deleted timelines' frames, "
                    "failed ingests, deleted records", cmd_gc)
    p.add_argument("--older-than", default="1h", metavar="AGE",
                   type=seconds_arg("--older-than"),
                   help="objects of unfinished writes without a lease must be this old: "
                   "seconds or an age like 30m, 12h, 7d (default 1h); writes in progress keep "
                   "a lease and are never touched")
    p.add_argument("--dry-run", action="store_true", help="report, delete nothing")
