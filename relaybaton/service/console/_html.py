"""Safe HTML for the console: every value is escaped where it is put in a page.

Pages are built from ``Html`` fragments; ``html()`` joins a template of literal markup with
values, escaping each value unless it is an ``Html`` already. Model output, tool results
and user text therefore reach a page only as text: a ``<script>`` in a message is shown,
never run (and the Content-Security-Policy forbids inline script besides).
"""

from __future__ import annotations

import html as _stdlib_html
import json
from collections.abc import Iterable
from typing import final

__all__ = ["Html", "SECURITY_HEADERS", "escape", "html", "join", "page", "pretty_json"]

#: Sent with every console answer: scripts and styles only from this server (no inline
#: ones), no framing, no referrer, and the browser must not guess content types.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@final
class Html(str):
    """Markup that is safe to put in a page as it is (built by ``html`` or ``join``)."""

    __slots__ = ()


def escape(value: object) -> Html:
    """``value`` as text in HTML (quotes too, so it is safe in attributes)."""
    if isinstance(value, Html):
        return value
    return Html(_stdlib_html.escape("" if value is None else str(value), quote=True))


def html(template: str, *values: object) -> Html:
    """``template`` with each ``{}`` replaced by a value, escaped unless ``Html``."""
    parts = template.split("{}")
    if len(parts) != len(values) + 1:
        raise ValueError(f"template has {len(parts) - 1} slots, {len(values)} values given")
    out = [parts[0]]
    for value, part in zip(values, parts[1:], strict=True):
        out.append(escape(value))
        out.append(part)
    return Html("".join(out))


def join(fragments: Iterable[object], sep: str = "") -> Html:
    """Fragments one after the other (plain values are escaped)."""
    return Html(sep.join(escape(f) for f in fragments))


def pretty_json(value: object) -> str:
    """JSON for people (escaped where it is shown, like any text)."""
    if isinstance(value, str):
        try:
            parsed: object = json.loads(value)
        except ValueError:
            return value
        value = parsed
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


_NAV = (
    ("/", "Conversations"),
    ("/approvals", "Approvals"),
    ("/supervisor", "Supervisor"),
    ("/memory", "Memory"),
    ("/evaluations", "Evaluations"),
)


def page(
    title: str,
    body: Html,
    *,
    flow: str,
    csrf: str = "",
    who: str = "",
    live: str = "",
    current: str = "",
) -> Html:
    """A whole console page: the navigation, ``body``, the one script; ``live`` names the
    fragment the script keeps fresh (and ``data-events`` its SSE stream, when set)."""
    nav = join(
        html(
            '<a href="{}"{}>{}</a>',
            href,
            Html(' aria-current="page"' if href == current else ""),
            name,
        )
        for href, name in _NAV
    )
    account = (
        html(
            '<form method="post" action="/logout" class="inline">'
            '<input type="hidden" name="csrf" value="{}"><span>{}</span> '
            '<button type="submit">Log out</button></form>',
            csrf,
            who,
        )
        if who
        else Html("")
    )
    return html(
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>{} · relaybaton</title>"
        '<link rel="stylesheet" href="/console/static/console.css">'
        '<script src="/console/static/console.js" defer></script>'
        '</head><body data-live="{}" data-csrf="{}">'
        '<header><strong>relaybaton</strong> <span class="flow">{}</span><nav>{}</nav>{}</header>'
        "<main><h1>{}</h1>{}</main></body></html>",
        title,
        live,
        csrf,
        flow,
        nav,
        account,
        title,
        body,
    )
