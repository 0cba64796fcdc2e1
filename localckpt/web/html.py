"""HTML building blocks: escaping, the page layout, JSON and values shown as text.

Every piece of user-supplied text (source names, labels, stage names, config, outputs)
goes through :func:`esc` or :func:`attr` exactly once, where it enters markup. Pages never
inline scripts or styles, so the Content-Security-Policy can forbid both (server.py): a
``<script>`` that escaped escaping would still not run.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

__all__ = [
    "attr",
    "esc",
    "json_text",
    "kv_table",
    "layout",
    "link",
    "pager",
    "shorten",
    "tabs",
    "url",
]


def esc(value: Any) -> str:
    """Text for an element's content (also safe inside a quoted attribute)."""
    return html.escape(str(value), quote=True)


def attr(value: Any) -> str:
    """A double-quoted attribute value."""
    return '"' + html.escape(str(value), quote=True) + '"'


def url(path: str, **query: Any) -> str:
    """A same-site URL; path segments are the caller's (ids), query values are quoted."""
    items = {k: v for k, v in query.items() if v is not None and v != ""}
    return path + ("?" + urlencode(items, quote_via=quote) if items else "")


def link(href: str, text: Any, cls: str | None = None) -> str:
    c = f" class={attr(cls)}" if cls else ""
    return f"<a href={attr(href)}{c}>{esc(text)}</a>"


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def json_text(value: Any, width: int = 96) -> str:
    """JSON as readable text (not escaped: pass it through esc): indented, but any
    object or list whose one-line form fits in width stays on one line (boxes, points)."""
    out: list[str] = []
    _pretty(value, 0, 0, width, out)
    return "".join(out)


def _line(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "),
                      default=str)


def _pretty(value: Any, depth: int, used: int, width: int, out: list[str]) -> None:
    flat = _line(value)
    if not isinstance(value, (dict, list)) or not value or used + len(flat) <= width:
        out.append(flat)
        return
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict):
        items = [(_line(str(k)) + ": ", v) for k, v in sorted(value.items())]
        opening, closing = "{", "}"
    else:
        items = [("", v) for v in value]
        opening, closing = "[", "]"
    out.append(opening + "\n")
    for i, (key, v) in enumerate(items):
        out.append(inner + key)
        _pretty(v, depth + 1, len(inner) + len(key), width, out)
        out.append(",\n" if i < len(items) - 1 else "\n")
    out.append(pad + closing)


def compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)


def kv_table(values: Mapping[str, Any], empty: str = "none") -> str:
    """A two-column table of keys and JSON values."""
    if not values:
        return f'<p class="muted">{esc(empty)}</p>'
    rows = "".join(
        f"<tr><th>{esc(k)}</th><td><code>{esc(compact(v))}</code></td></tr>"
        for k, v in sorted(values.items())
    )
    return f'<table class="kv">{rows}</table>'


def pager(base: str, start: int, count: int, total: int, what: str, **query: Any) -> str:
    """'frames 0-99 of 10,000 · first · previous · next · last' links of a paged list."""
    if total == 0:
        return f'<p class="pager muted">no {esc(what)}</p>'
    if start >= total:  # a URL past the end (edited, or the list shrank): say so, lead back
        last = (total - 1) // count * count
        return ('<p class="pager">' + " · ".join([
            f"no {esc(what)} from {start:,}: there are {total:,}",
            link(url(base, start=0, **query), "first", "first"),
            link(url(base, start=last, **query), "last", "last")]) + "</p>")
    end = min(start + count, total)
    parts = [f"{esc(what)} {start:,}-{end - 1:,} of {total:,}"]
    if start > 0:
        parts.append(link(url(base, start=0, **query), "first", "first"))
        parts.append(link(url(base, start=max(start - count, 0), **query), "previous", "prev"))
    if end < total:
        parts.append(link(url(base, start=end, **query), "next", "next"))
        last = (total - 1) // count * count
        parts.append(link(url(base, start=last, **query), "last", "last"))
    return '<p class="pager">' + " · ".join(parts) + "</p>"


def tabs(names: Iterable[str], current: str, href: Callable[[str], str]) -> str:
    """A row of links, one per name, the current one highlighted."""
    return '<p class="tabs">' + " ".join(
        f'<a class={attr("tab on" if n == current else "tab")} href={attr(href(n))}>'
        f"{esc(n)}</a>" for n in names) + "</p>"


def layout(title: str, body: str, *, crumbs: Iterable[tuple[str, str]] = (),
           store: str = "", scripts: Iterable[str] = ()) -> str:
    """A whole page: header with breadcrumbs, the body, the read-only notice."""
    nav = " / ".join([link("/", "timelines"), *(link(h, t) for h, t in crumbs)])
    tags = "".join(f'<script src={attr(s)} defer></script>' for s in scripts)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · localckpt</title>"
        '<link rel="icon" href="/static/icon.svg" type="image/svg+xml">'
        f'<link rel="stylesheet" href="/static/app.css">{tags}</head><body>'
        f'<header><span class="brand">localckpt</span><nav>{nav}</nav>'
        f'<span class="ro" title="this server never writes to the store">read-only · '
        f"{esc(store)}</span></header>"
        f"<main><h1>{esc(title)}</h1>{body}</main></body></html>"
    )
