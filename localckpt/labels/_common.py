"""What the three label formats share: bounded reads, box checks, typed errors, and the
parsed form a format module hands to the importer.

A format module turns a file (or a directory, for YOLO) into :class:`Parsed`: the
labelled frames, each with its frame number as the file numbers it, where in the file it
was found, and its boxes. Matching numbers to timeline frames and scaling normalised
boxes is the importer's job (:mod:`localckpt.labels`), written once.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from ..arguments import shown
from ..errors import InvalidInputError
from ..safefiles import open_without_waiting

__all__ = [
    "MAX_BOXES",
    "MAX_BYTES",
    "MAX_FILES",
    "Det",
    "LabelFileError",
    "OutFrame",
    "Parsed",
    "RawBox",
    "RawFrame",
    "atomic_write",
    "check_label",
    "check_parent",
    "check_target",
    "check_track",
    "finite",
    "last_digits",
    "number_text",
    "parse_number",
    "read_bounded",
    "text_of",
    "too_many_boxes",
    "xywh_box",
]

#: Most bytes read from one label file (and from all files of a YOLO directory together).
MAX_BYTES = 256 << 20
#: Most files read from a YOLO directory.
MAX_FILES = 1_000_000
#: Most boxes read from one label file (or YOLO directory): an import holds each as
#: Python objects, some 900 bytes a box, and a 256 MB MOT file of 14-byte lines is 19
#: million of them (17 GB). The largest MOTChallenge sequence has 0.75 million.
MAX_BOXES = 2_000_000
#: Longest label name accepted.
MAX_LABEL = 1000

#: One detection in the documented form: {"box": [x1, y1, x2, y2], "label", "score", ...}.
Det = dict[str, Any]


class LabelFileError(InvalidInputError):
    """A label file that cannot be imported: ``path`` names the file, ``where`` the line
    or entry (empty when the whole file is at fault). Nothing was written. cli_problem:
    the problem as the command line says it, where it names a flag."""

    def __init__(self, path: str | os.PathLike[str], where: str, problem: str, *,
                 cli_problem: str | None = None) -> None:
        self.path = os.fspath(path)
        self.where = where
        self.problem = problem
        at = f"{self.path}, {where}" if where else self.path
        super().__init__(f"{at}: {problem}",
                         cli=None if cli_problem is None else f"{at}: {cli_problem}")


@attrs.frozen
class RawBox:
    """A box as the file states it. coords: (x1, y1, x2, y2) in pixels, or, when
    normalised (YOLO), fractions of the frame's width and height."""

    coords: tuple[float, float, float, float]
    label: str
    score: float | None = None
    track_id: int | None = None
    normalised: bool = False


@attrs.frozen
class RawFrame:
    """A labelled frame as the file numbers it (its boxes may be none: labelled empty)."""

    number: int
    where: str
    boxes: tuple[RawBox, ...]


@attrs.frozen
class Parsed:
    """What a format module read: labelled frames (in file order), entries it could not
    turn into boxes as (where, why) pairs (reported, never dropped silently), and the
    span of frame numbers the file labels when that is more than the frames listed."""

    frames: tuple[RawFrame, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    #: (first, last) frame number of a file that labels every frame in between, those
    #: without a line too (MOT); None when only the frames listed are labelled.
    span: tuple[int, int] | None = None


def _check_regular(path: Path, what: str) -> os.stat_result:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LabelFileError(path, "", f"no such {what}") from None
    except OSError as exc:
        raise LabelFileError(path, "", f"cannot read it: {exc.strerror or exc}") from None
    return st


def read_bounded(path: Path, limit: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file, refusing anything larger than limit (checked before
    reading, and again while reading: a file may grow, a device has no size)."""
    st = _check_regular(path, "file")
    if not stat.S_ISREG(st.st_mode):
        raise LabelFileError(path, "", "is not a regular file")
    if st.st_size > limit:
        raise LabelFileError(path, "", f"is {st.st_size:,} bytes, more than the {limit:,} "
                                       "bytes a label file may have; split it")
    try:  # checked again once open: a FIFO may have taken its place since the stat
        with open(open_without_waiting(path), "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise LabelFileError(path, "", "is not a regular file (it was replaced "
                                               "while being opened)")
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise LabelFileError(path, "", "no such file") from None
    except OSError as exc:
        raise LabelFileError(path, "", f"cannot read it: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise LabelFileError(path, "", f"holds more than the {limit:,} bytes a label file "
                                       "may have; split it")
    return data


def too_many_boxes(path: Path, count: int) -> LabelFileError:
    """The error for a file of count boxes, more than MAX_BOXES."""
    return LabelFileError(path, "", f"holds {count:,} boxes or more, more than the "
                                    f"{MAX_BOXES:,} one import takes; split it")


def text_of(path: Path, data: bytes) -> str:
    """UTF-8 text (a byte order mark is dropped); LabelFileError naming the line of the
    first byte that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise LabelFileError(path, f"line {line}", "is not UTF-8 text") from None


def finite(value: Any) -> bool:
    """A real number (not bool, NaN or infinity, nor an int beyond a float's range)."""
    if type(value) is int:  # math.isfinite would raise OverflowError past 1.8e308
        return -sys.float_info.max <= value <= sys.float_info.max
    return type(value) is float and math.isfinite(value)


def _shown_box(*values: Any) -> str:
    """A box as an error message shows it: each value clipped (a file's 400-digit number
    made a message of 500 characters)."""
    return "[" + ", ".join(shown(v, 24) for v in values) + "]"


def xywh_box(path: Path, where: str, values: Iterable[Any]) -> tuple[float, float, float, float]:
    """[x, y, w, h] in pixels -> (x1, y1, x2, y2), refusing non-numbers, NaN, infinities
    and negative sizes. Negative x or y are kept: ground truth such as MOT17 has boxes
    that reach past the frame's left or top edge."""
    x, y, w, h = values
    if not all(finite(v) for v in (x, y, w, h)):
        raise LabelFileError(path, where, f"box {_shown_box(x, y, w, h)} holds something "
                                          "that is not a finite number")
    if w < 0 or h < 0:
        raise LabelFileError(path, where, f"box {_shown_box(x, y, w, h)} has a negative "
                                          "width or height")
    try:
        x, y = float(x), float(y)
        # rounded to 1e-9 pixel: corners exported as [x, y, x2 - x, y2 - y] read back equal
        x2, y2 = max(x, round(x + float(w), 9)), max(y, round(y + float(h), 9))
    except OverflowError:  # an int too large for a float
        x2 = y2 = math.inf
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(x2)
            and math.isfinite(y2)):
        raise LabelFileError(path, where, f"box {[x, y, w, h]!r:.120} reaches beyond the "
                                          "largest number a coordinate may be")
    return (x, y, x2, y2)


def check_label(path: Path, where: str, label: Any) -> str:
    if not isinstance(label, str) or len(label) > MAX_LABEL:
        raise LabelFileError(path, where, f"label {label!r:.60} is not a string of at most "
                                          f"{MAX_LABEL} characters")
    if not label.isascii():
        try:
            label.encode("utf-8")
        except UnicodeEncodeError:  # a JSON escape such as "\ud800": no store holds it
            raise LabelFileError(path, where, f"label {label!r:.60} holds a lone surrogate, "
                                              "which is not valid Unicode") from None
    return label


#: A number as label files write one: ASCII digits, an optional sign, point and
#: exponent (float() also takes '1_000', Arabic-Indic and full-width digits).
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


def parse_number(text: str) -> float | None:
    """The number a field of a text label file (MOT, YOLO) writes, NaN and infinities
    included (callers say those are not finite), or None when it is not one."""
    text = text.strip()
    if not (_NUMBER.fullmatch(text) or _NOT_FINITE.fullmatch(text)):
        return None
    return float(text)


#: Track ids a file may give: what a 64-bit integer column (SQL, Parquet) holds.
TRACK_RANGE = (-(2**63), 2**63 - 1)


def check_track(path: Path, where: str, track: int, text: str | None = None) -> int:
    """A track id (an int) within TRACK_RANGE; LabelFileError otherwise (the store's
    tables could not hold it, and a track id that large is no tool's). text: the id
    as the file writes it, for the message."""
    if not TRACK_RANGE[0] <= track <= TRACK_RANGE[1]:
        shown = repr(track) if text is None else text.strip()
        raise LabelFileError(path, where, f"track id {shown:.40} is beyond the 64-bit "
                                          "integers a track id may be")
    return track


def last_digits(name: str) -> int | None:
    """The frame number a file name holds: its last run of ASCII digits (CVAT writes
    ``frame_000123.jpg``), or None."""
    end = len(name)
    while end and not ("0" <= name[end - 1] <= "9"):
        end -= 1
    start = end
    while start and "0" <= name[start - 1] <= "9":
        start -= 1
    if start == end or end - start > 18:
        return None
    return int(name[start:end])


@attrs.frozen
class OutFrame:
    """A frame to write: its number in the file, its pixel size, its detections (each
    ``{"box": [x1, y1, x2, y2], "label", "score"?, "track_id"?}``)."""

    number: int
    width: int
    height: int
    dets: tuple[Det, ...]


def cannot_write(path: Path, exc: BaseException) -> LabelFileError:
    """What the system refused when path was written (a name too long, a NUL or a lone
    surrogate in it, no permission), as the LabelFileError every format raises."""
    return LabelFileError(path, "", f"cannot write it: {getattr(exc, 'strerror', None) or exc}")


def check_parent(path: Path) -> None:
    """LabelFileError unless path's directory exists: a mistyped directory is reported,
    never created (as bundle export does)."""
    if not os.path.isdir(path.parent):
        raise LabelFileError(path, "", f"cannot write it: {path.parent} is not a directory; "
                                       "create it first, or name a path in an existing one")


def check_target(path: Path, overwrite: bool) -> None:
    """LabelFileError unless a label file may be written at path: its directory exists,
    it is not a directory, and it is no existing file unless overwrite (a user's file is
    not replaced by a typo, as a YOLO directory is not)."""
    check_parent(path)
    if os.path.isdir(path):
        raise LabelFileError(path, "", "is a directory; name a file in it")
    if not overwrite and os.path.lexists(path):
        raise LabelFileError(
            path, "", "already exists; choose a new path, or pass overwrite=True to replace it",
            cli_problem="already exists; choose a new path, or pass --force to replace it")


def atomic_write(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write data to path through a temporary file in the same directory and a rename:
    a reader never sees half a file, and a failure leaves no file behind. An existing
    file is replaced only if overwrite (:func:`check_target`). The file gets the mode
    the umask gives (mkstemp's 0600 would hide it from the user's team)."""
    import tempfile

    from ..placefile import place, regular_target
    from ..shards import file_mode

    path = Path(regular_target(str(path), "export_labels"))
    check_target(path, overwrite)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), file_mode())
            fh.write(data)
        try:  # without overwrite, not over a file that appeared meanwhile
            place(tmp, path, overwrite=overwrite)
        except FileExistsError:
            check_target(path, overwrite)  # says so
            raise
        tmp = None
    except (OSError, ValueError) as exc:  # ValueError: a NUL or lone surrogate in the name
        raise cannot_write(path, exc) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def number_text(value: float) -> str:
    """A coordinate or score as text that reads back as the same float."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))
