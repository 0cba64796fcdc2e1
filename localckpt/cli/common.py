"""What every command shares: references, output format, progress bars and exit codes.

Exit status, as the README says: 0 success, 1 a localckpt error (message on stderr, or a
check such as ``verify`` that found problems), 2 bad usage (argparse's own convention).
Bad usage is a command line wrong by its form, whatever the store holds: an unknown
option, a missing argument, a value that is not of its kind or out of its range (an
argparse ``type`` here: :func:`whole`, :func:`real`, :func:`unit_fraction`,
:func:`age_arg`, :func:`seconds_arg`), options that exclude each other
(:class:`UsageError`). A well-formed value that names nothing the store holds (an
unknown id, a stage no checkpoint has) is an error, 1.

JSON output carries a short id beside every full id (:func:`add_short_ids`): ``short_id``
beside a record's ``id``, ``X_short_id`` beside a field ``X_id`` (``timeline_short_id``)
or an id-valued field ``X`` (``a_short_id``, ``merged_from_short_id``), and a
``short_ids`` object (full id -> short id) in reports that list ids.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import CorruptDataError, InvalidInputError, LocalckptError, NotFoundError
from ..refs import listing_here, resolve, short_ids
from ..render import printable

if TYPE_CHECKING:
    from ..store import Store

__all__ = [
    "CHECKPOINT_HELP",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "TIMELINE_HELP",
    "UsageError",
    "add_command",
    "add_short_ids",
    "age_arg",
    "bare_name",
    "checkpoint_ref",
    "here",
    "options_arg",
    "output_file",
    "print_json",
    "print_report",
    "printable",
    "progress",
    "real",
    "remote_in_errors",
    "seconds_arg",
    "short_id_map",
    "short_ids_in_errors",
    "short_ids_in_text",
    "stage_name",
    "storage_options_arg",
    "store_named",
    "tag_name",
    "timeline_ref",
    "verify_here",
    "written_path",
]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class UsageError(InvalidInputError):
    """A command line wrong by its form that argparse cannot see alone: options that
    exclude each other (``sql --json --csv``), one that goes only with another. Raised by
    a command's ``check(args)`` (run before any store is opened) or by the command
    itself; main shows it as argparse shows its own errors, under the command's usage
    (``localckpt sql: error: ...``), and exits 2."""

#: Help of every argument that takes a reference (localckpt.refs lists the forms).
CHECKPOINT_HELP = "checkpoint: id, short id, unique prefix, tag, or TIMELINE:stage"
TIMELINE_HELP = "timeline: id, short id, unique prefix, or tag (its checkpoint's timeline)"
#: rm's: a tag names a checkpoint, and `rm TAG` deleting its whole timeline surprises
TIMELINE_ID_HELP = ("timeline: id, short id or unique prefix (not a tag: `prune TAG` deletes "
                    "a tagged checkpoint)")


def add_command(
    sub: Any, name: str, help: str, func: Any, *, creates: bool = False,
    needs_store: bool = True, description: str | None = None,
) -> argparse.ArgumentParser:
    """A subcommand with ``--json``. creates: may create a missing store (only init, demo,
    ingest, import and pull do); needs_store False: the command opens no store itself."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=description or help)
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    # _parser: the parser whose usage an unrecognized argument is shown with (main)
    p.set_defaults(func=func, creates=creates, needs_store=needs_store, _parser=p)
    return p


_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high], so that a value out of range is
    a usage error naming the flag, not the API's message naming its keyword."""
    rule = f"a whole number >= {low}" if high is None else f"a whole number in {low}..{high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {rule}, not {text!r}")
        return value

    return parse


def real(low: float = 0.0, *, above: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite number above low (above) or from low up, so that a value
    out of range is a usage error naming the flag."""
    span = f"{'above' if above else '>='} {low:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (value > low if above else value >= low) or value == math.inf:
            finite = "finite " if math.isinf(value) else ""  # inf is above 0: say why not
            raise argparse.ArgumentTypeError(f"must be a {finite}number {span}, not {text!r}")
        return value

    return parse


def nonempty(what: str) -> Callable[[str], str]:
    """An argparse type: text that is never empty (``--store ""`` or ``sql ''``, from an
    unset shell variable most likely, is bad usage, exit 2, before any store is opened)."""
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
        return text

    return parse


def stage_name(text: str) -> str:
    """An argparse type: a stage's name, which is never empty (``--stage ""``, from an
    unset shell variable most likely, is bad usage rather than a stage no checkpoint has,
    or, for memo clear, a filter that matches nothing)."""
    if not text:
        raise argparse.ArgumentTypeError("must name a stage, not ''")
    return text


def written_path(text: str) -> str:
    """An argparse type: the path of a file a command writes (export's FILE, labels
    export's PATH). ``-`` is bad usage: it reads as standard output, as for many tools,
    but these write a file (a zip, or a directory for YOLO), and a file named ``-`` was
    left in the working directory without a word; ``./-`` names that file."""
    if text == "-":
        raise argparse.ArgumentTypeError(
            "'-' is not standard output here: this command writes a file, so give its path "
            "(./- for a file named '-')")
    return text


class _Intermixed(argparse.ArgumentParser):
    """A command's parser that takes its positionals wherever they stand among its
    options (argparse's intermixed parsing). Plain parsing fills every positional it can
    at the first option, so an optional one (export's FILE, which -o may give instead)
    would be taken as absent in ``export T --force FILE``."""

    _inside = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if self._inside:  # the intermixed parse's own passes
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def add_output(p: argparse.ArgumentParser, dest: str, metavar: str, help: str) -> None:
    """The file a command writes: after its other arguments, or as ``-o/--output`` (as
    pg_dump, docker save and curl take it), one of the two."""
    assert p.get_default("check") is None  # one check per command: this one
    p.__class__ = type(f"Intermixed{type(p).__name__}", (_Intermixed, type(p)), {})
    p.add_argument(dest, metavar=metavar, nargs="?", type=written_path,
                   help=f"{help} (or -o {metavar})")
    p.add_argument("-o", "--output", metavar=metavar, type=written_path,
                   help=f"{metavar} given as an option")

    def one_of_the_two(args: argparse.Namespace) -> None:
        given, option = getattr(args, dest), args.output
        if given is not None and option is not None:
            raise UsageError(f"{metavar} is given twice ({given} and -o {option}): give it "
                             "once, as an argument or as -o")
        if given is None and option is None:
            raise UsageError(f"{metavar} is missing: the file to write, as an argument or "
                             f"as -o {metavar}")
        setattr(args, dest, option if given is None else given)

    p.set_defaults(check=one_of_the_two)


def tag_name(text: str) -> str:
    """An argparse type: a tag's name as tags are named (localckpt.maintenance.tags), so
    that one no tag can have is a usage error (exit 2) before any store is opened."""
    from ..maintenance.tags import check_name

    try:
        return check_name(text)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def unit_fraction(text: str) -> float:
    """An argparse type: a number in (0, 1] (an IoU threshold)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], not {text!r}")
    return value


def parse_age(text: str, option: str) -> datetime | timedelta:
    """``7d`` / ``12h`` / ``30m`` / ``45s`` / ``2w`` (back from now), or an ISO date or
    time (UTC unless it names a zone); InvalidInputError naming option otherwise."""
    m = _AGE.fullmatch(text.strip())
    if m:
        try:
            return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
        except OverflowError:
            raise InvalidInputError(f"{option} {text!r} reaches further back than any "
                                    "date") from None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"{option} {text!r} is neither an age (7d, 12h, 30m, 45s, 2w) nor an ISO "
            "date or time (2026-11-30, 2026-11-30T12:00:00+01:00)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_seconds(text: str, option: str) -> float:
    """A span as seconds (``3600``) or as an age like parse_age's (``1h``, ``7d``), so
    that every option about how old something is reads the same; InvalidInputError
    naming option otherwise."""
    m = _AGE.fullmatch(text.strip())
    if m:
        return float(m.group(1)) * _UNITS[m.group(2)]
    try:
        seconds = float(text)
    except ValueError:
        raise InvalidInputError(f"{option} {text!r} is neither seconds (3600) nor an age "
                                "(45s, 30m, 12h, 7d, 2w)") from None
    if not 0 <= seconds < float("inf"):  # NaN too
        raise InvalidInputError(f"{option} {text!r} is not a span of time: give seconds "
                                "of 0 or more (3600) or an age (45s, 30m, 12h, 7d, 2w)")
    return seconds


def age_arg(option: str) -> Callable[[str], datetime | timedelta]:
    """An argparse type: :func:`parse_age` of option's value, so that an age that is none
    is a usage error (exit 2) naming the flag."""
    return _argparse_type(parse_age, option)


def seconds_arg(option: str) -> Callable[[str], float]:
    """An argparse type: :func:`parse_seconds` of option's value (exit 2 when it is no
    span of time)."""
    return _argparse_type(parse_seconds, option)


def _argparse_type(parse: Callable[[str, str], Any], option: str) -> Callable[[str], Any]:
    def as_type(text: str) -> Any:
        try:
            return parse(text, option)
        except InvalidInputError as exc:  # argparse puts "argument --x: " before it
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{option} ")) from None

    as_type.__name__ = parse.__name__  # argparse's "invalid <name> value" never shows
    return as_type


@contextlib.contextmanager
def short_ids_in_errors(store: Store, ids: Mapping[str, str], *,
                        every: str | None = None) -> Iterator[None]:
    """An error raised inside names the records of ids ({full id: kind}) by their short
    ids on the command line, as the rest of it does: for a message made where only the
    full id is at hand (localckpt.similar works on a frame index, not a store). every:
    the kind of any other full id the message holds (prune's refusal names merges that
    the command never saw). The API's message keeps the full ids; short ids are looked
    up only when an error is raised."""
    try:
        yield
    except LocalckptError as exc:
        from ..ids import full_ids_in

        text = exc.for_cli()
        for full in full_ids_in(text):
            kind = ids.get(full, every)
            if kind is None:
                continue
            try:
                short = store.short_id(full, kind)
            except LocalckptError:  # the store gone, say: the full id stays
                continue
            text = text.replace(full, short)
        exc.cli = text
        raise


#: The stores this command opened by a remote's name, and that name (remote_in_errors).
_TYPED: weakref.WeakKeyDictionary[Store, str] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def remote_in_errors(store: Store, name: str) -> Iterator[None]:
    """Inside, store is a remote the user named by its name, and is said as typed: in
    the messages the command line makes (:func:`store_named`, :func:`here`), and in an
    error raised inside whose message (``localckpt.refs.names_nothing``) says the
    remote's URL: ``in team (URL)`` and ``see `localckpt --store team ls```, as push's
    and pull's reports name it ("pull from team (URL)"). For a name that ``--store``
    opens as that remote (:func:`bare_name`: no file or directory of that name here),
    so that the listing given lists the same store."""
    url = store.url
    if not url or url == name:
        yield
        return
    _TYPED[store] = name
    try:
        yield
    except LocalckptError as exc:
        exc.cli = _url_as_name(exc.for_cli(), url, name).replace(
            f" in {url}: ", f" in {name} ({url}): ")
        raise
    finally:
        _TYPED.pop(store, None)


#: The advice a message about a damaged catalog ends with: made in the catalog, where no
#: Store (and so no ``--store``) is at hand.
_VERIFY = "`localckpt verify`"


@contextlib.contextmanager
def verify_here(store: Store) -> Iterator[None]:
    """A damaged catalog met inside is said with the command that verifies *this* store
    (:func:`here`): `localckpt --store team tree T` said "run `localckpt verify`", which
    verifies the default store, not the damaged one."""
    try:
        yield
    except CorruptDataError as exc:
        said = exc.for_cli()
        if _VERIFY in said:
            exc.cli = said.replace(_VERIFY, listing_here(store, _VERIFY))
        raise


def _url_as_name(text: str, url: str, name: str) -> str:
    """text with each command on the store at url (```localckpt --store URL ...```)
    given as the remote's name was typed."""
    import shlex

    return text.replace(f"`localckpt --store {shlex.quote(url)} ",
                        f"`localckpt --store {shlex.quote(name)} ")


def prints_unicode() -> bool:
    """Whether standard output can encode the tree's box-drawing characters and the
    ellipsis of a clipped cell (a terminal in a C or Latin-1 locale, or
    PYTHONIOENCODING=ascii, cannot: they came out as \\u2514 escapes; the command line
    says them in ASCII there)."""
    try:
        "└├│─…".encode(getattr(sys.stdout, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def store_named(store: Store) -> str:
    """The store as messages name it: a remote opened by its name as ``team (URL)``,
    else its URL (or its catalog's description)."""
    where = store.url or store.catalog.describe()
    name = _TYPED.get(store)
    return where if name is None else f"{name} ({where})"


def here(store: Store, listing: str) -> str:
    """The command listing (```localckpt ls```) run on store: with ``--store`` when store
    is not the default one (``localckpt.refs.listing_here``), naming a remote opened by
    its name as it was typed."""
    said = listing_here(store, listing)
    name = _TYPED.get(store)
    return said if name is None or not store.url else _url_as_name(said, store.url, name)


#: A full id standing as a word, not part of an object key (``frames/<id>/index.parquet``
#: is a path, said whole) nor of a longer token.
_WORD_ID = re.compile(r"(?<![\w/-])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
                      r"(?![\w/-])")


def short_ids_in_text(texts: Iterable[str], *stores: Store) -> list[str]:
    """texts with each full id of a timeline, checkpoint or stage run that stands as a
    word replaced by its short id in the first of stores that holds it, as ls and tree
    print them: for messages made where only full ids are at hand (verify's problems
    name records of several kinds; a transfer's warnings, records of either side). An
    id no store holds a record of (a missing parent) stays whole, and so do object keys;
    a catalog that cannot say leaves the ids whole (verify reads damaged stores). One
    read per kind and store, for every id at once (``refs.short_ids(held_only=True)``)."""
    texts = list(texts)
    left = list(dict.fromkeys(m.group() for t in texts for m in _WORD_ID.finditer(t)))
    shorts: dict[str, str] = {}
    for store in stores:
        for kind in ("timeline", "checkpoint", "run"):
            if not left:
                break
            try:
                shorts.update(short_ids(store, left, kind, held_only=True))
            except LocalckptError:  # a damaged store (its engine's error translated)
                continue
            left = [full for full in left if full not in shorts]
    if not shorts:
        return texts
    return [_WORD_ID.sub(lambda m: shorts.get(m.group(), m.group()), t) for t in texts]


def bare_name(ref: str | None) -> bool:
    """Whether ``--store`` is a bare name (no '/' or ':') that names no file or directory
    here: a remote's name when one is configured, else a new store directory."""
    import os

    return ref is not None and ref != "" and "/" not in ref and ":" not in ref \
        and not os.path.exists(ref)


def timeline_or_newest(store: Store, ref: str | None) -> str:
    """ref resolved; when ref is None, the store's newest timeline (the one created last;
    a store of one video need not be told which), saying on stderr which one it took
    when the store holds several. It is the newest by created_at, then id
    (``Catalog.timeline_page``: one page of one timeline is read, not every timeline):
    ids are tokens, and one that is not a UUIDv7 (an old store's, or a peer's ``zzzz``)
    has no time and sorts by its characters, after every UUID, but is not taken for the
    newest for that. A transfer admits a created_at no more than a day ahead of the
    local clock (``localckpt.admit.check_times``)."""
    if ref is not None:
        return timeline_ref(store, ref)
    page, _, total = store.catalog.timeline_page(0, 1, newest_first=True)
    if not page:  # the commands said for the store read, not the default one
        raise NotFoundError(f"no timelines in {store_named(store)}; add one with "
                            f"{here(store, '`localckpt ingest FILE`')}")
    newest = page[0]
    if total > 1:
        short = store.short_id(newest.id, "timeline")
        print(f"note: {total} timelines in this store; using the newest, {short} "
              f"({printable(newest.source_video)}); name another as TIMELINE "
              f"({here(store, '`localckpt ls`')} lists them)",
              file=sys.stderr)
    return newest.id


def timeline_ref(store: Store, ref: str) -> str:
    """A timeline id from what a user typed: an id, short id, unique prefix, or a tag
    (its checkpoint's timeline); see localckpt.refs. A checkpoint's id is not found,
    saying which timeline that checkpoint is on."""
    try:
        return resolve(store, ref, "timeline")
    except NotFoundError as exc:
        checkpoint = _other_kind(store, ref, "checkpoint")
        if checkpoint is None:
            raise
        tid = store.get_checkpoint(checkpoint).timeline_id
        raise NotFoundError(str(exc), cli=(
            f"{ref!r} is a checkpoint ({store.short_id(checkpoint)}, of timeline "
            f"{store.short_id(tid, 'timeline')}), not a timeline; "
            f"{here(store, '`localckpt ls`')} lists the timelines")) from None


def checkpoint_ref(store: Store, ref: str) -> str:
    """A checkpoint id from an id, short id, unique prefix, tag or ``TIMELINE:stage``.
    A timeline's id is not found, saying where that timeline's checkpoints are listed
    (``localckpt ls`` shows timeline ids, the first a user sees)."""
    try:
        return resolve(store, ref, "checkpoint")
    except NotFoundError as exc:
        timeline = _other_kind(store, ref, "timeline")
        if timeline is None:
            raise
        short = store.short_id(timeline, "timeline")
        root = store.short_id(store.get_timeline(timeline).root_checkpoint_id)
        raise NotFoundError(str(exc), cli=(
            f"{ref!r} is a timeline ({short}), not a checkpoint; "
            f"{here(store, f'`localckpt tree {short}`')} lists its checkpoints (its "
            f"root is {root}; {short}:STAGE names the newest that ran STAGE)")) from None


def _other_kind(store: Store, ref: str, kind: str) -> str | None:
    """The id of the record of kind that ref names, or None (not found, ambiguous,
    malformed): only to say what a reference of the wrong kind is."""
    from ..errors import LocalckptError

    try:
        return resolve(store, ref, kind)
    except LocalckptError:
        return None


#: The kind of record each id-valued JSON field names ("id" is given per call).
ID_FIELDS: dict[str, str] = {
    "timeline_id": "timeline", "root_checkpoint_id": "checkpoint",
    "checkpoint_id": "checkpoint", "parent_id": "checkpoint", "merged_from": "checkpoint",
    "a": "checkpoint", "b": "checkpoint", "ours": "checkpoint", "theirs": "checkpoint",
    "result": "checkpoint", "run_id": "run", "held_by": "run",
}


def _short_key(key: str) -> str:
    if key == "id":
        return "short_id"
    return key[:-3] + "_short_id" if key.endswith("_id") else key + "_short_id"


def add_short_ids(store: Store, records: Iterable[dict[str, Any]], kind: str | None,
                  ) -> list[dict[str, Any]]:
    """records with a short id beside every id field (see the module docstring); kind:
    what a record's own ``id`` is ("timeline", "checkpoint"; None: no short id for it).
    Short ids are computed in one batch per kind."""
    records = list(records)
    wanted: dict[str, set[str]] = {}
    for r in records:
        for key, value in r.items():
            k = kind if key == "id" else ID_FIELDS.get(key)
            if k is not None and isinstance(value, str):
                wanted.setdefault(k, set()).add(value)
    shorts = {k: store.short_ids(sorted(ids), k) for k, ids in wanted.items()}
    out = []
    for r in records:
        extra = {}
        for key, value in r.items():
            k = kind if key == "id" else ID_FIELDS.get(key)
            if k is not None:
                extra[_short_key(key)] = shorts[k].get(value) if isinstance(value, str) \
                    else None
        out.append({**r, **extra})
    return out


def short_id_map(store: Store, ids: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """{full id: short id} for ids grouped by kind ({"checkpoint": [...], ...})."""
    out: dict[str, str] = {}
    for kind, group in ids.items():
        out.update(store.short_ids(group, kind))
    return out


def storage_options_arg(text: str | None, flag: str) -> dict[str, Any] | None:
    from ..safefiles import parse_json

    if text is None:
        return None
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{flag} is not valid text") from None
    example = """(such as '{"endpoint_url": "http://127.0.0.1:9000"}')"""
    # size and nesting capped: never a RecursionError; one message, not "is not a JSON
    # object: the ... value is not valid JSON"
    value = parse_json(data, f"{flag} value")
    if not isinstance(value, dict):
        kind = ("null" if value is None else "true or false" if isinstance(value, bool)
                else "a string" if isinstance(value, str) else "an array"
                if isinstance(value, list) else "a number")
        raise InvalidInputError(f"{flag} must be a JSON object of fsspec options {example}, "
                                f"not {kind}")
    return value


def options_arg(flag: str) -> Callable[[str], dict[str, Any]]:
    """An argparse type: :func:`storage_options_arg` of flag's value, so that text that is
    no JSON object is a usage error (exit 2) naming the flag."""
    def json_object(text: str) -> dict[str, Any]:
        try:
            value = storage_options_arg(text, flag)
        except InvalidInputError as exc:  # argparse puts "argument FLAG: " before it
            message = str(exc).replace(f"the {flag} value", "the value", 1)
            raise argparse.ArgumentTypeError(message.removeprefix(f"{flag} ")) from None
        assert value is not None
        return value

    return json_object


def output_file(path: str, command: str) -> str:
    """The path an export (``export``, ``labels export``) writes its file to
    (``localckpt.placefile.regular_target``: never over a device, a pipe or a socket; a
    symlink to a file is written through)."""
    from ..placefile import regular_target

    return regular_target(path, command)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str))


def print_report(report: Any, args: argparse.Namespace, what: str, *,
                 stores: Sequence[Store] = (), **extra: Any) -> None:
    """An attrs report: as JSON with --json (with extra keys), else its one-line summary();
    a report's warnings(), when it has them, go to stderr either way, naming records by
    their short ids in the first of stores that holds them."""
    warnings = report.warnings() if hasattr(report, "warnings") else []
    if warnings and stores:
        warnings = short_ids_in_text(warnings, *stores)
    if args.json:
        import attrs

        print_json({**attrs.asdict(report), **extra})
    else:
        print(f"{what}: {report.summary(warnings=False) if warnings else report.summary()}")
    for warning in warnings:
        print(f"localckpt: warning: {what}: {warning}", file=sys.stderr)


def progress() -> bool | None:
    """True (a tqdm bar on stderr) when stderr is a terminal, else None (silent)."""
    return True if sys.stderr.isatty() else None
