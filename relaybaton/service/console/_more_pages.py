"""The console's other pages: the model supervisor, memory, evaluation reports."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from relaybaton.actors.routing import ModelSlot
from relaybaton.memory import KnowledgeGraph
from relaybaton.memory._store import GraphStore
from relaybaton.service.console._html import Html, html, join, pretty_json

__all__ = ["evaluations_fragment", "memory_fragment", "supervisor_fragment"]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def supervisor_fragment(slots: Mapping[str, ModelSlot]) -> Html:
    """Each slot: what it holds (a swap shows as another model than its primary), its
    candidates with breaker state and windows, its rollout; then what changed over time."""
    if not slots:
        return html('<p class="empty">This flow binds no model slots.</p>')
    sections = []
    for name, slot in slots.items():
        adapters = [c.adapter.name for c in slot.candidates] or [slot.adapter.name]
        rows = []
        for adapter in adapters:
            breaker = slot.board.breakers.get(adapter) if slot.board is not None else None
            window = breaker.window if breaker is not None else None
            transitions = breaker.transitions[-3:] if breaker is not None else []
            rows.append(
                html(
                    "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                    "<td>{}</td><td>{}</td></tr>",
                    adapter,
                    " (held)" if adapter == slot.adapter.name else "",
                    breaker.state.value if breaker is not None else "closed (no calls yet)",
                    _seconds(window.quantile(0.5) if window else None),
                    _seconds(window.quantile(0.95) if window else None),
                    f"{window.error_rate:.1%}" if window else "-",
                    "-" if window is None or window.utility is None else f"{window.utility:.2f}",
                    slot.calls.get(adapter, 0),
                    join(
                        (f"{t.source.value}→{t.target.value}: {t.reason}" for t in transitions),
                        "; ",
                    ),
                )
            )
        rollout = slot.rollout
        rollout_text = (
            html(
                "<p>rollout {} → {}: {} at {} share {}</p>",
                rollout.incumbent.name,
                rollout.candidate.name,
                rollout.rollout.state.value,
                f"{rollout.rollout.share:.0%}",
                rollout.rollout.reason,
            )
            if rollout is not None
            else Html("")
        )
        sections.append(
            html(
                '<section class="slot" data-slot="{}"><h2>slot {}</h2><p>holds <b>{}</b>'
                " (primary {})</p>{}"
                '<table class="list"><thead><tr><th>candidate</th><th>breaker</th><th>p50</th>'
                "<th>p95</th>"
                "<th>errors</th><th>utility</th><th>calls</th><th>recent"
                " transitions</th></tr></thead><tbody>{}</tbody></table></section>",
                name,
                name,
                slot.adapter.name,
                slot.primary.name,
                rollout_text,
                join(rows),
            )
        )
    # Over time: every breaker transition (what makes the supervisor swap) and every
    # rollout step, promotion and rollback, oldest first, on the runtime's clock.
    moments: list[tuple[float, Html]] = []
    for name, slot in slots.items():
        if slot.board is not None:
            for breaker in slot.board.breakers.values():
                moments += [
                    (
                        t.at,
                        html(
                            "slot {}: {} breaker {} → {} ({})",
                            name,
                            t.adapter,
                            t.source.value,
                            t.target.value,
                            t.reason,
                        ),
                    )
                    for t in breaker.transitions
                ]
        if slot.rollout is not None:
            moments += [
                (
                    e.at,
                    html(
                        "slot {}: rollout {} {} → {} at {} ({})",
                        name,
                        e.action,
                        e.incumbent,
                        e.candidate,
                        f"{e.share:.0%}",
                        e.reason,
                    ),
                )
                for e in slot.rollout.events
            ]
    moments.sort(key=lambda m: m[0])
    history = (
        html(
            "<ol>{}</ol>",
            join(html("<li>t={} s: {}</li>", f"{at:.1f}", text) for at, text in moments),
        )
        if moments
        else html('<p class="empty">No breaker transitions or rollout steps yet.</p>')
    )
    return html(
        "{}<section><h2>Breakers and rollouts over time</h2>{}</section>", join(sections), history
    )


async def memory_fragment(store: GraphStore | None, user: str, query: str) -> Html:
    """A user's knowledge graph: a search, or its first entities."""
    form = html(
        '<form method="get" action="/memory" class="control"><input name="user"'
        ' placeholder="user" value="{}">'
        '<input name="q" placeholder="search" value="{}"><button'
        ' type="submit">Show</button></form>',
        user,
        query,
    )
    if store is None:
        return html(
            '{}<p class="empty">This flow has no memory configured ([memory] in the flow'
            " file).</p>",
            form,
        )
    if not user:
        return html('{}<p class="empty">Name a user to browse their graph.</p>', form)
    graph = KnowledgeGraph(store, namespace=user)
    if query:
        view = await graph.search_nodes(query)
        entities, relations = view.entities, view.relations
    else:
        page = await graph.read_page(limit=200)
        entities, relations = page.entities, page.relations
    if not entities:
        return html(
            '{}<p class="empty">No entities for {}{}.</p>',
            form,
            user,
            f" matching {query!r}" if query else "",
        )
    cards = join(
        html(
            '<article class="entity"><h3>{} <small>{}</small></h3><ul>{}</ul></article>',
            e.name,
            e.entity_type,
            join(html("<li>{}</li>", o) for o in e.observations),
        )
        for e in entities
    )
    edges = join(
        html("<li>{} <i>{}</i> {}</li>", r.from_, r.relation_type, r.to) for r in relations
    )
    return html("{}{}<h2>Relations</h2><ul>{}</ul>", form, cards, edges)


def evaluations_fragment(directory: Path | None) -> Html:
    """The reports of ``relaybaton eval`` found in ``directory`` (JSON files), newest first."""
    if directory is None:
        return html(
            '<p class="empty">No evaluation reports directory is configured; start the server '
            "with --eval-reports DIR to show the reports of <code>relaybaton eval</code>.</p>"
        )
    reports = (
        sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        if directory.is_dir()
        else []
    )
    if not reports:
        return html(
            '<p class="empty">There are no evaluation reports in {} yet.</p>', str(directory)
        )
    items = []
    for path in reports[:50]:
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            items.append(
                html(
                    '<article class="report"><h2>{}</h2><p class="problem">unreadable:'
                    " {}</p></article>",
                    path.name,
                    exc,
                )
            )
            continue
        summary = (
            {k: v for k, v in data.items() if not isinstance(v, list | dict)}
            if isinstance(data, dict)
            else {}
        )
        items.append(
            html(
                '<article class="report"><h2>{}</h2><dl>{}</dl><details><summary>whole'
                " report</summary><pre>{}</pre></details></article>",
                path.name,
                join(html("<dt>{}</dt><dd>{}</dd>", k, v) for k, v in summary.items()),
                pretty_json(data),
            )
        )
    return join(items)
