"""A Griffe extension for the API reference: read localckpt's docstrings as written.

The docstrings use a compact Google style with two habits the Google parser does not know,
so this rewrites them before they are parsed (the source stays as it is):

- one entry for several names, ``width, height: pixel size.`` in an ``Attributes:`` or
  ``Args:`` section, becomes one entry per name with the same description;
- Sphinx roles (``:func:`localckpt.open```, ``:class:``, ``:mod:``, ``:data:``, ...)
  become plain code, and a paragraph ending in ``::`` before an indented block (a
  reStructuredText literal block, already code in Markdown) ends in ``:``.

Loaded by mkdocstrings (``extensions:`` in mkdocs.yml); tests/test_docs.py checks it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["DocstringFormat", "rewrite"]

_SECTIONS = {"args:", "arguments:", "attributes:", "parameters:", "params:",
             "other parameters:", "keyword args:", "keyword arguments:"}
_MULTI = re.compile(r"^(?P<indent>[ \t]+)(?P<names>[A-Za-z_]\w*(?:,[ \t]*[A-Za-z_]\w*)+)"
                    r":(?P<rest>[ \t].*|)$")
_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|data|meth|attr|exc|obj|const):(?=`)")
_LITERAL = re.compile(r"(?<=\S)::$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def rewrite(text: str) -> str:
    """The docstring text with multi-name entries split and Sphinx markup removed."""
    lines = _ROLE.sub("", text).splitlines()
    out: list[str] = []
    section: int | None = None  # indentation of the current section's header
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.lower() in _SECTIONS:
            section = _indent(line)
        elif stripped and section is not None and _indent(line) <= section:
            section = None
        m = _MULTI.match(line) if section is not None and _indent(line) > section else None
        if m:
            body = [lines[i]]
            while (i + 1 < len(lines) and lines[i + 1].strip()
                   and _indent(lines[i + 1]) > _indent(line)):  # the entry's continuation
                i += 1
                body.append(lines[i])
            for name in re.split(r",[ \t]*", m.group("names")):
                out.append(f"{m.group('indent')}{name}:{m.group('rest')}")
                out.extend(body[1:])
        else:
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            after = lines[i + 2] if i + 2 < len(lines) else ""
            if _LITERAL.search(line) and not nxt.strip() and _indent(after) > _indent(line):
                line = line[:-1]
            out.append(line)
        i += 1
    return "\n".join(out)


class DocstringFormat(griffe.Extension):
    """Rewrites every docstring of the loaded package (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
