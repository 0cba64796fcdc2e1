"""What every command shares: references, output format, progress bars and exit codes.

Exit status, as the README says: 0 success, 1 a localckpt error (message on stderr, or a
check such as ``verify`` that found problems), 2 bad usage (argparse's own convention).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ..refs import resolve_checkpoint, resolve_timeline

if TYPE_CHECKING:
    from ..store import Store

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_command",
    "checkpoint_ref",
    "print_json",
    "print_report",
    "progress",
    "storage_options_arg",
    "timeline_ref",
]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def add_command(
    sub: Any, name: str, help: str, func: Any, *, creates: bool = False,
    needs_store: bool = True, description: str | None = None,
) -> argparse.ArgumentParser:
    """A subcommand with ``--json``. creates: may create a missing store (only init, demo,
    ingest, import and pull do); needs_store False: the command opens no store itself."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=description or help)
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    p.set_defaults(func=func, creates=creates, needs_store=needs_store)
    return p


def timeline_ref(store: Store, ref: str) -> str:
    """A timeline id from what a user typed: an id or a unique prefix (6+ characters)."""
    return resolve_timeline(store, ref)


def checkpoint_ref(store: Store, ref: str) -> str:
    """A checkpoint id from an id, a unique prefix, a tag or ``TIMELINE:stage``."""
    return resolve_checkpoint(store, ref)


def storage_options_arg(text: str | None, flag: str) -> dict[str, Any] | None:
    from ..safefiles import parse_json

    if text is None:
        return None
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{flag} is not valid text") from None
    try:  # size and nesting capped: never a RecursionError
        value = parse_json(data, f"{flag} value")
    except InvalidInputError as exc:
        raise InvalidInputError(f"{flag} is not a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"{flag} must be a JSON object of fsspec options")
    return value


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str))


def print_report(report: Any, args: argparse.Namespace, what: str, **extra: Any) -> None:
    """An attrs report: as JSON with --json (with extra keys), else its one-line summary()."""
    if args.json:
        import attrs

        print_json({**attrs.asdict(report), **extra})
    else:
        print(f"{what}: {report.summary()}")


def progress() -> bool | None:
    """True (a tqdm bar on stderr) when stderr is a terminal, else None (silent)."""
    return True if sys.stderr.isatty() else None
