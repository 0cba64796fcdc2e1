"""Record kinds and their fields, defined once.

Every place that stores or ships records (the embedded catalog's logs and packs, bundles,
the PostgreSQL row codec, sync) derives its layout from :data:`FIELDS`: names, order,
types, which fields are JSON-encoded in columnar forms, and the default a field takes
when a record written before the field existed lacks it. A new field is one line here.

Kinds::

    timeline     Timeline      frames of one source video and the root of a tree
    checkpoint   Checkpoint    one node of a tree
    tombstone    Tombstone     a deletion: its target (timeline, checkpoint or tag) is gone
    tag          Tag           a name for a checkpoint

Stage outputs are not records: they are canonical JSON bytes keyed by their SHA-256.

:func:`validate` is the one check every record passes before anything is written (the
:class:`localckpt.Batch` constructor calls it): ids are plain tokens that can never be
read as paths, text holds valid Unicode, JSON fields hold JSON objects, times are aware.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import attrs

from .arguments import shown
from .canonical import canonical_bytes
from .errors import CorruptDataError, InvalidInputError
from .types import Checkpoint, Tag, Timeline, Tombstone

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "FIELDS",
    "KINDS",
    "Field",
    "Record",
    "arrow_schema",
    "check_id",
    "from_dict",
    "from_rows",
    "kind_of",
    "to_arrow",
    "to_dict",
    "validate",
]

Record = Timeline | Checkpoint | Tombstone | Tag
FieldType = Literal["id", "text", "float", "int", "bool", "time", "json", "hash"]

_NO_DEFAULT = object()


@attrs.frozen
class Field:
    """One field of a record kind.

    Attributes:
        name: attribute name on the value type, key in dict forms, column name.
        type: id (a record id), hash (64 hex digits), text (user text), float, int, bool,
            time (aware UTC datetime), json (a JSON object; JSON text in columnar forms).
        optional: None is allowed.
        default: the value a record written before this field existed reads as
            (a callable makes a fresh value each time).
    """

    name: str
    type: FieldType
    optional: bool = False
    default: Any = _NO_DEFAULT

    def missing(self) -> Any:
        if self.default is _NO_DEFAULT:
            raise KeyError(self.name)
        return self.default() if callable(self.default) else self.default


F = Field
FIELDS: dict[str, tuple[Field, ...]] = {
    "timeline": (
        F("id", "id"), F("source_video", "text"), F("profile_name", "text"),
        F("fps", "float"), F("source_asset_id", "text", optional=True),
        F("root_checkpoint_id", "id"), F("frame_count", "int"), F("created_at", "time"),
        # added in format 2: what the source video was (fps, width, height, codec,
        # duration, ...) and the SHA-256 of the frame index object (its integrity check)
        F("source_info", "json", default=dict),
        F("index_hash", "hash", optional=True, default=None),
    ),
    "checkpoint": (
        F("id", "id"), F("timeline_id", "id"), F("parent_id", "id", optional=True),
        F("stage", "text", default=""), F("stage_hashes", "json"),
        F("config_overrides", "json"), F("stats", "json"), F("is_scenario", "bool"),
        F("scenario_label", "text", default=""), F("created_at", "time"),
        F("merged_from", "id", optional=True, default=None),
    ),
    "tombstone": (
        F("id", "id"), F("target_id", "id"), F("kind", "text"), F("timeline_id", "id"),
        F("created_at", "time"),
    ),
    "tag": (
        F("id", "id"), F("name", "text"), F("checkpoint_id", "id"), F("timeline_id", "id"),
        F("created_at", "time"),
    ),
}
TYPES: dict[str, type] = {
    "timeline": Timeline, "checkpoint": Checkpoint, "tombstone": Tombstone, "tag": Tag,
}
KINDS = tuple(FIELDS)
_KIND_OF = {cls: kind for kind, cls in TYPES.items()}
#: What a tombstone may delete.
TOMBSTONE_TARGETS = ("timeline", "checkpoint", "tag")

# Ids are tokens: letters, digits, '-' and '_' (UUIDs, hashes); never '.', '/' or '\\',
# so an id can be one component of an object key and never escape it.
_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,127}")
_HASH = re.compile(r"[0-9a-f]{64}")


def kind_of(record: Any) -> str:
    """The kind name of a record value."""
    try:
        return _KIND_OF[type(record)]
    except KeyError:
        raise InvalidInputError(
            f"{type(record).__name__} is not a record (one of {', '.join(KINDS)})"
        ) from None


def check_id(value: Any, what: str) -> str:
    """value if it is a well-formed id, else InvalidInputError naming what."""
    if type(value) is not str or not _ID.fullmatch(value):
        given = value if type(value) is str else type(value).__name__
        raise InvalidInputError(
            f"{what} {given!r} is not a valid id (ids are 1-128 letters, digits, '-' or '_', "
            "e.g. a UUID)"
        )
    return value


def check_text(value: Any, what: str) -> None:
    """InvalidInputError unless value is a plain str of valid Unicode (no lone
    surrogate), which every backend stores."""
    if type(value) is not str:
        raise InvalidInputError(f"{what} must be a str, not {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(
                f"{what} holds a lone surrogate ({value!r}), which is not valid Unicode and "
                "that no backend can store; decode the text properly"
            ) from None


def _check_value(f: Field, value: Any, what: str) -> None:
    if value is None:
        if not f.optional:
            raise InvalidInputError(f"{what} must not be None")
        return
    t = f.type
    if t == "id":
        check_id(value, what)
    elif t == "hash":
        if type(value) is not str or not _HASH.fullmatch(value):
            raise InvalidInputError(f"{what} must be a SHA-256 hex digest, not {shown(value)}")
    elif t == "text":
        check_text(value, what)
    elif t == "bool":
        if type(value) is not bool:
            raise InvalidInputError(f"{what} must be a bool, not {type(value).__name__}")
    elif t == "int":
        if type(value) is not int or value < 0:
            raise InvalidInputError(f"{what} must be a non-negative int, not {shown(value)}")
    elif t == "float":
        if type(value) not in (float, int) or value != value or value in (
            float("inf"), float("-inf")
        ):
            raise InvalidInputError(f"{what} must be a finite number, not {shown(value)}")
    elif t == "time":
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise InvalidInputError(f"{what} must be a timezone-aware datetime, not {shown(value)}")
        try:  # every backend stores it in UTC: 9999-12-31T23:00-05:00 has no UTC form
            value.astimezone(UTC)
        except OverflowError:
            raise InvalidInputError(f"{what} {value.isoformat()} is out of range in UTC (years "
                                    "1 to 9999)") from None
    elif t == "json":
        if not isinstance(value, Mapping):
            raise InvalidInputError(f"{what} must be a JSON object, not {type(value).__name__}")
        canonical_bytes(dict(value), what)


def validate(record: Any) -> None:
    """Check every field of a record (see the module docstring); InvalidInputError names
    the record and the field. The one place records are checked before a write."""
    kind = kind_of(record)
    ident = getattr(record, "id", "?")
    for f in FIELDS[kind]:
        _check_value(f, getattr(record, f.name), f"{kind} {ident!r}: {f.name}")
    if kind == "checkpoint":
        for stage, h in record.stage_hashes.items():
            if type(h) is not str or not _HASH.fullmatch(h):
                raise InvalidInputError(
                    f"checkpoint {ident!r}: stage {stage!r} refers to {shown(h)}, not a SHA-256 "
                    "hex digest"
                )
    elif kind == "tag" and "\x00" in record.name:
        # Store.tag refuses these too; PostgreSQL's text cannot hold NUL, and a tag row
        # has no exact column to keep it, so it would read back as a damaged row
        raise InvalidInputError(f"tag {ident!r}: name {record.name!r} holds a NUL character")
    elif kind == "tombstone" and record.kind not in TOMBSTONE_TARGETS:
        raise InvalidInputError(
            f"tombstone {ident!r}: kind must be one of {TOMBSTONE_TARGETS}, not "
            f"{shown(record.kind)}"
        )


# -- dict form (logs, manifests, --json output) --------------------------------------------


def _time_text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _parse_time(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def to_dict(record: Any) -> dict[str, Any]:
    """The JSON-serialisable dict form of a record; from_dict(kind, to_dict(r)) == r."""
    out: dict[str, Any] = {}
    for f in FIELDS[kind_of(record)]:
        value = getattr(record, f.name)
        if f.type == "time":
            value = _time_text(value)
        elif f.type == "json":
            value = dict(value)
        out[f.name] = value
    return out


def from_dict(kind: str, d: Mapping[str, Any]) -> Any:
    """A record from its dict form (or a columnar row, JSON fields given as text).

    Fields a record written by an older version lacks take their defaults. Malformed
    input (a missing field, a wrong type) is CorruptDataError: dict forms come from
    stored or shipped data, never from callers."""
    import json

    values: dict[str, Any] = {}
    try:
        for f in FIELDS[kind]:
            value = d[f.name] if f.name in d else f.missing()
            if value is None:
                values[f.name] = None if f.optional else f.missing()
                continue
            if f.type == "time":
                value = _parse_time(value)
            elif f.type == "json":
                value = dict(json.loads(value) if isinstance(value, str) else value)
            elif f.type == "float":
                value = float(value)
            elif f.type == "int":
                value = int(value)
            elif f.type == "bool":
                value = bool(value)
            values[f.name] = value
        return TYPES[kind](**values)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        ident = d.get("id") if isinstance(d, Mapping) else None
        raise CorruptDataError(f"malformed {kind} record {ident!r}: {type(exc).__name__}: "
                               f"{exc}") from exc


# -- columnar form (Parquet in packs and bundles, Arrow into DuckDB) -----------------------


def arrow_schema(kind: str) -> pa.Schema:
    """The Arrow schema of a kind (JSON fields as JSON text)."""
    import pyarrow as pa

    types = {
        "id": pa.string(), "hash": pa.string(), "text": pa.string(), "json": pa.string(),
        "float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(),
        "time": pa.timestamp("us", tz="UTC"),
    }
    return pa.schema([pa.field(f.name, types[f.type]) for f in FIELDS[kind]])


def to_arrow(kind: str, records: Iterable[Any]) -> pa.Table:
    """An Arrow table of records of one kind (JSON fields as sorted-key JSON text)."""
    import json

    import pyarrow as pa

    rows = list(records)
    columns: dict[str, list[Any]] = {}
    for f in FIELDS[kind]:
        values = [getattr(r, f.name) for r in rows]
        if f.type == "json":
            values = [json.dumps(dict(v), sort_keys=True, ensure_ascii=False) for v in values]
        columns[f.name] = values
    return pa.table(columns, schema=arrow_schema(kind))


def from_rows(kind: str, rows: Iterable[Mapping[str, Any]]) -> list[Any]:
    """Records from columnar rows (``pa.Table.to_pylist()``); CorruptDataError if malformed."""
    return [from_dict(kind, row) for row in rows]
