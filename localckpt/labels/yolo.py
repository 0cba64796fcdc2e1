"""YOLO label directories (Ultralytics, darknet, CVAT's "YOLO 1.1").

Reading: a directory of ``<digits>.txt`` files, one per frame (the frame number is the
last run of digits in the file name: ``000123.txt`` and ``frame_000123.txt`` are frame
123), each line ``class cx cy w h [score]`` with the box centre and size as fractions of
the frame's width and height. Class names come from ``classes.txt`` (or ``obj.names``),
one per line, else from the ``names`` of ``data.yaml``. An empty file is a frame labelled
empty. YOLO has no track ids.

Writing: ``classes.txt`` (labels in order) and ``<number>.txt`` per frame, six digits.
A label that a line of ``classes.txt`` cannot give back (a line break in it, spaces
around it) is refused: it would read back as another label.
The directory must not exist or be empty: nothing is overwritten. Its parent must exist:
a mistyped path is an error, not a new directory.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ._common import (
    MAX_BOXES,
    MAX_BYTES,
    MAX_FILES,
    LabelFileError,
    OutFrame,
    Parsed,
    RawBox,
    RawFrame,
    cannot_write,
    check_label,
    check_parent,
    last_digits,
    number_text,
    parse_number,
    read_bounded,
    text_of,
    too_many_boxes,
)

__all__ = ["read", "write"]

_CLASS_FILES = ("classes.txt", "obj.names")
_YAML = "data.yaml"
_TOLERANCE = 1e-6  # normalised values written with 6 decimals may overshoot 1 by rounding


def _names_from_lines(path: Path) -> list[str]:
    lines = text_of(path, read_bounded(path)).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return [check_label(path, f"line {i}", line.strip()) for i, line in enumerate(lines, 1)]


_ITEM = re.compile(r"""\s*(?:'([^']*)'|"([^"]*)"|([^,'"]*?))\s*(?:,|$)""")


def _scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text.split(" #", 1)[0].strip()


def _flow_items(path: Path, where: str, text: str) -> list[str]:
    inner = text.strip()[1:-1].strip()
    if not inner:
        return []
    items, pos = [], 0
    while pos < len(inner):
        m = _ITEM.match(inner, pos)
        if m is None or m.end() == pos:
            raise LabelFileError(path, where, "names is not a list this reader understands")
        items.append(next(g for g in m.groups() if g is not None).strip())
        pos = m.end()
    return items


def _names_from_yaml(path: Path) -> list[str]:
    """The ``names`` of a YOLO data.yaml: a flow list ``[a, b]``, a flow mapping
    ``{0: a, 1: b}``, a block list (``- a``) or a block mapping (``0: a``)."""
    lines = text_of(path, read_bounded(path)).splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("names:"):
            continue
        where = f"line {i + 1}"
        rest = line[len("names:"):].split(" #", 1)[0].strip()
        if rest.startswith("["):
            return [check_label(path, where, n) for n in (_scalar(x) for x in
                                                          _flow_items(path, where, rest))]
        if rest.startswith("{"):
            pairs = [x.split(":", 1) for x in _flow_items(path, where, rest)]
            return _from_pairs(path, where, pairs)
        if rest:
            raise LabelFileError(path, where, "names must be a list or a mapping")
        block = []
        for j in range(i + 1, len(lines)):
            item = lines[j]
            if not item.strip() or item.lstrip().startswith("#"):
                continue
            if not item[0].isspace():
                break
            block.append((j + 1, item.strip()))
        if all(text.startswith("- ") or text == "-" for _, text in block):
            return [check_label(path, f"line {n}", _scalar(text[1:])) for n, text in block]
        pairs = []
        for n, text in block:
            if ":" not in text:
                raise LabelFileError(path, f"line {n}", "expected '<index>: <name>'")
            pairs.append(text.split(":", 1))
        return _from_pairs(path, where, pairs)
    raise LabelFileError(path, "", "has no 'names:' naming the classes")


def _index(text: str) -> int | None:
    """A class index: ASCII digits only (str.isdigit also takes '²', which int refuses),
    at most 18 of them (int refuses 4,300), else None."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > 18:
        return None
    return int(text)


def _from_pairs(path: Path, where: str, pairs: list[list[str]]) -> list[str]:
    found: dict[int, str] = {}
    for pair in pairs:
        index = _index(pair[0])
        if len(pair) != 2 or index is None:
            raise LabelFileError(path, where, "names mapping keys must be class indexes")
        found[index] = check_label(path, where, _scalar(pair[1]))
    if sorted(found) != list(range(len(found))):
        raise LabelFileError(path, where, "names mapping must number classes 0, 1, 2, ...")
    return [found[k] for k in range(len(found))]


def _class_names(directory: Path) -> list[str]:
    for name in _CLASS_FILES:
        if (directory / name).is_file():
            return _names_from_lines(directory / name)
    if (directory / _YAML).is_file():
        return _names_from_yaml(directory / _YAML)
    raise LabelFileError(directory, "", "has no classes.txt (or obj.names, or data.yaml) "
                                        "naming the classes")


def _number(path: Path, where: str, text: str) -> float:
    value = parse_number(text)
    if value is None:
        raise LabelFileError(path, where, f"{text!r:.40} is not a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise LabelFileError(path, where, f"{text!r:.40} is not a finite number")
    return value


def _frame(path: Path, names: list[str], number: int, data: bytes, room: int) -> RawFrame:
    """The boxes of one label file; room: how many more boxes the import takes."""
    boxes: list[RawBox] = []
    lines = text_of(path, data).splitlines()
    if len(lines) > room and sum(1 for line in lines if line.strip()) > room:
        raise too_many_boxes(path.parent, MAX_BOXES + 1)  # counted before any is parsed
    for n, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {n}"
        if len(fields) not in (5, 6):
            raise LabelFileError(path, where, f"has {len(fields)} fields; a YOLO line is "
                                              "'class cx cy w h [score]'")
        index = _index(fields[0])
        if index is None or index >= len(names):
            raise LabelFileError(path, where, f"class {fields[0]!r:.20} is not an index of "
                                              f"the {len(names)} class names")
        cx, cy, w, h = (_number(path, where, f) for f in fields[1:5])
        if not all(-_TOLERANCE <= v <= 1 + _TOLERANCE for v in (cx, cy, w, h)):
            raise LabelFileError(path, where, "centre and size must be fractions of the "
                                              "frame (0 to 1): this box is not normalised")
        score = _number(path, where, fields[5]) if len(fields) == 6 else None
        boxes.append(RawBox((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2),
                            names[index], score, None, normalised=True))
    return RawFrame(number, path.name, tuple(boxes))


def read(directory: Path) -> Parsed:
    """The labelled frames of a YOLO directory (see the module docstring)."""
    if not directory.is_dir():
        raise LabelFileError(directory, "", "is not a directory (YOLO labels are a directory "
                                            "of <frame>.txt files)")
    names = _class_names(directory)
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise LabelFileError(directory, "", f"cannot list it: {exc.strerror or exc}") from None
    files = [e for e in entries if e.name.endswith(".txt") and e.name not in _CLASS_FILES]
    if len(files) > MAX_FILES:
        raise LabelFileError(directory, "", f"holds {len(files):,} label files, more than "
                                            f"{MAX_FILES:,}; split it")
    frames: list[RawFrame] = []
    seen: dict[int, str] = {}
    budget = MAX_BYTES
    room = MAX_BOXES
    for entry in files:
        path = Path(entry.path)
        number = last_digits(entry.name[:-4])
        if number is None:
            raise LabelFileError(path, "", "holds no frame number in its name (YOLO label "
                                           "files are <frame>.txt)")
        if number in seen:
            raise LabelFileError(path, "", f"is frame {number}, as {seen[number]} is")
        seen[number] = entry.name
        if budget <= 0 or entry.stat().st_size > budget:
            raise LabelFileError(directory, "", f"its label files hold more than the "
                                                f"{MAX_BYTES:,} bytes read at most; split it")
        data = read_bounded(path, budget)
        budget -= len(data)
        frames.append(_frame(path, names, number, data, room))
        room -= len(frames[-1].boxes)
    return Parsed(tuple(frames))


def check_target(directory: Path) -> None:
    """LabelFileError unless directory's parent exists and it is new or empty."""
    check_parent(directory)
    try:
        taken = directory.exists() and (not directory.is_dir() or any(directory.iterdir()))
    except (OSError, ValueError) as exc:  # a name too long, a NUL, no permission
        raise cannot_write(directory, exc) from None
    if taken:
        raise LabelFileError(directory, "", "exists and is not an empty directory; choose a "
                                            "new one (nothing is overwritten)")


def write(directory: Path, frames: Sequence[OutFrame], *, overwrite: bool = False) -> None:
    """A YOLO directory of these frames (see the module docstring). All or nothing: the
    files are written into a temporary directory that is then renamed into place.
    overwrite (for the file formats) changes nothing: a user's directory is never
    replaced."""
    from ..shards import file_mode

    check_target(directory)
    labels = sorted({d["label"] or "" for f in frames for d in f.dets})
    for name in labels:  # what classes.txt would give back as another name, or two
        if name and (name.splitlines() != [name] or name.strip() != name):
            raise LabelFileError(directory, "", f"label {name!r:.60} cannot be a YOLO class "
                                                "name (classes.txt holds one name a line, "
                                                "read without the spaces around it); export "
                                                "as coco, which keeps any label")
    index = {name: i for i, name in enumerate(labels)}
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    except (OSError, ValueError) as exc:  # ValueError: a NUL or lone surrogate in the name
        raise cannot_write(directory, exc) from None
    try:
        mode = file_mode()  # mkdtemp makes 0700; a directory is searchable where readable
        tmp.chmod(mode | (mode & 0o444) >> 2)
        (tmp / "classes.txt").write_text("".join(f"{n}\n" for n in labels), encoding="utf-8")
        for f in frames:
            lines = []
            for d in f.dets:
                x1, y1, x2, y2 = d["box"]
                values = [(x1 + x2) / 2 / f.width, (y1 + y2) / 2 / f.height,
                          (x2 - x1) / f.width, (y2 - y1) / f.height]
                if d.get("score") is not None:
                    values.append(d["score"])
                lines.append(" ".join([str(index[d["label"] or ""]),
                                       *(number_text(v) for v in values)]))
            (tmp / f"{f.number:06d}.txt").write_text("".join(f"{x}\n" for x in lines),
                                                     encoding="utf-8")
        if directory.exists():
            directory.rmdir()
        os.replace(tmp, directory)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise cannot_write(directory, exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
