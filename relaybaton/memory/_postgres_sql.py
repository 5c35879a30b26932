"""The PostgreSQL graph store's SQL: its schema, and the pieces of its ranked search.

Kept apart from the store's code (``_postgres.py``): the text PostgreSQL runs, and the
folding of terms that must match what the search vectors hold.
"""

from __future__ import annotations

import unicodedata
from typing import Final

__all__ = ["QUERY", "RANK_WEIGHTS", "RELATION_SHARE", "SCHEMA", "fold"]

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS {s}.entity (
    id bigserial PRIMARY KEY,
    namespace text NOT NULL,
    name text NOT NULL,
    entity_type text NOT NULL,
    name_lc text NOT NULL,
    type_lc text NOT NULL,
    search tsvector NOT NULL DEFAULT ''::tsvector
);
CREATE INDEX IF NOT EXISTS entity_by_name ON {s}.entity (namespace, name);
CREATE INDEX IF NOT EXISTS entity_by_namespace ON {s}.entity (namespace, id);
CREATE INDEX IF NOT EXISTS entity_search ON {s}.entity USING gin (search);
CREATE TABLE IF NOT EXISTS {s}.observation (
    id bigserial PRIMARY KEY,
    entity_id bigint NOT NULL REFERENCES {s}.entity (id) ON DELETE CASCADE,
    content text NOT NULL,
    content_lc text NOT NULL,
    agent text,
    conversation_id text,
    at timestamptz
);
CREATE INDEX IF NOT EXISTS observation_by_entity ON {s}.observation (entity_id, id);
CREATE TABLE IF NOT EXISTS {s}.relation (
    id bigserial PRIMARY KEY,
    namespace text NOT NULL,
    source text NOT NULL,
    target text NOT NULL,
    relation_type text NOT NULL,
    search tsvector NOT NULL
);
CREATE INDEX IF NOT EXISTS relation_by_source ON {s}.relation (namespace, source, target);
CREATE INDEX IF NOT EXISTS relation_by_target ON {s}.relation (namespace, target);
CREATE INDEX IF NOT EXISTS relation_by_namespace ON {s}.relation (namespace, id);
CREATE INDEX IF NOT EXISTS relation_search ON {s}.relation USING gin (search)
"""

# ts_rank's weights are given for D, C, B, A: observations, (unused), type, name.
RANK_WEIGHTS = "ARRAY[0.1, 0.1, 0.4, 1.0]::float4[]"
# A relation whose type matches lends its endpoints this share of its own rank.
RELATION_SHARE = 0.5
# The OR of the terms, each a prefix; quote_literal makes tsquery syntax in a term inert.
QUERY = (
    "(SELECT to_tsquery('simple', string_agg(quote_literal(t) || ':*', ' | '))"
    " FROM unnest(%s::text[]) AS t)"
)


def fold(text: str) -> str:
    """Lower-case ``text`` and drop its diacritics: what ranked search compares."""
    return "".join(
        c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c)
    )
