"""One spelling per concept in the JSON the CLI and the service emit.

Events name what they are in ``kind`` (never ``type``); ids are named for what they
identify (``conversation_id``, ``approval_id``, ``event_id``), never a bare ``id``. Fields of
the OpenAI wire format and chat messages inside a transcript are not events and keep theirs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def assert_event_spelling(events: Iterable[Mapping[str, object]], where: str) -> list[str]:
    """Check every event; return their kinds, in order."""
    kinds: list[str] = []
    for event in events:
        assert "kind" in event, f"{where}: an event without kind: {event}"
        assert "type" not in event, f"{where}: an event spells its kind 'type': {event}"
        assert "id" not in event, f"{where}: an event with a bare id: {event}"
        kinds.append(str(event["kind"]))
    return kinds


def assert_no_bare_id(value: Mapping[str, object], where: str) -> None:
    """A conversation (or an approval, ...) is never identified by a bare ``id``."""
    assert "id" not in value, f"{where}: a bare id: {value}"
