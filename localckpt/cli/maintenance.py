"""Commands that create and tidy a store: init, gc."""

from __future__ import annotations

import argparse
from typing import Any

from ..store import Store
from .common import add_command, print_json

__all__ = ["register"]


def cmd_init(store: Store, args: argparse.Namespace) -> int:
    if args.json:
        print_json({"store": store.url, "catalog": store.catalog.describe(),
                    "objects": store.objects.describe()})
    else:
        print(f"localckpt store ready at {store.url} (objects in {store.objects.describe()})")
    return 0


def cmd_gc(store: Store, args: argparse.Namespace) -> int:
    from ..gc import collect_garbage

    report = collect_garbage(store, older_than=args.older_than, dry_run=args.dry_run)
    if args.json:
        import attrs

        print_json(attrs.asdict(report))
        return 0
    print(report.summary())
    for tid in report.orphan_timelines:
        print(f"  {tid}")
    return 0


def register(sub: Any) -> None:
    add_command(sub, "init", "create a store (at --store, else ./.localckpt)", cmd_init,
                creates=True)

    p = add_command(sub, "gc", "remove frame objects no timeline refers to (failed ingests)",
                    cmd_gc)
    p.add_argument("--older-than", type=float, default=3600.0, metavar="SECONDS",
                   help="only objects at least this old (default 3600: spares live ingests)")
    p.add_argument("--dry-run", action="store_true", help="report, delete nothing")
