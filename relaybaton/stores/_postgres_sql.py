"""The SQL texts of the PostgreSQL journal (``_postgres.py``): its tables and statements.

``{s}`` is the store's schema, filled in as a quoted identifier.
"""

from __future__ import annotations

SCHEMA_TABLES = """
CREATE TABLE IF NOT EXISTS {s}.records (
    conversation_id text NOT NULL,
    seq bigint NOT NULL,
    epoch bigint NOT NULL,
    kind text NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE TABLE IF NOT EXISTS {s}.heads (
    conversation_id text PRIMARY KEY,
    seq bigint NOT NULL,
    epoch bigint NOT NULL,
    owner text,
    status text NOT NULL,
    unfinished boolean NOT NULL,
    updated_at double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.approvals (
    position bigserial,
    approval_id text PRIMARY KEY,
    conversation_id text NOT NULL,
    request bytea NOT NULL,
    decision text NOT NULL DEFAULT ''
)
"""

PUT_HEADS = """
INSERT INTO {s}.heads AS h
    (conversation_id, seq, epoch, owner, status, unfinished, updated_at)
SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::text[],
                     %s::boolean[], %s::float8[])
ON CONFLICT (conversation_id) DO UPDATE SET
    seq = excluded.seq, epoch = excluded.epoch, owner = excluded.owner,
    status = excluded.status, unfinished = excluded.unfinished, updated_at = excluded.updated_at
WHERE h.epoch <= excluded.epoch
RETURNING conversation_id
"""

PUT_RECORDS = """
INSERT INTO {s}.records (conversation_id, seq, epoch, kind, body, writer, generation)
SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::bytea[],
                     %s::text[], %s::bigint[])
ON CONFLICT (conversation_id, seq) DO UPDATE SET
    epoch = excluded.epoch, kind = excluded.kind, body = excluded.body,
    writer = excluded.writer, generation = excluded.generation
"""

# A decision row carries an empty request: keep the stored one (see combine_approval_rows).
PUT_APPROVALS = """
INSERT INTO {s}.approvals AS a (approval_id, conversation_id, request, decision)
SELECT * FROM unnest(%s::text[], %s::text[], %s::bytea[], %s::text[])
ON CONFLICT (approval_id) DO UPDATE SET
    conversation_id = excluded.conversation_id,
    request = CASE WHEN length(excluded.request) > 0 THEN excluded.request ELSE a.request END,
    decision = CASE WHEN excluded.decision <> '' THEN excluded.decision ELSE a.decision END
"""

DECIDED = """
SELECT approval_id, decision FROM {s}.approvals WHERE approval_id = ANY(%s) FOR UPDATE
"""

PRUNE = """
DELETE FROM {s}.records AS r USING unnest(%s::text[], %s::bigint[]) AS p(cid, upto)
WHERE r.conversation_id = p.cid AND r.seq < p.upto
"""

# Who wrote each body: the node and the lease generation it wrote under (NULL outside
# cluster mode). Nothing reads them back; they are there so that a person (or the fault
# tests' history checker) can prove no two nodes wrote one conversation under one lease.
# Added in place, like the fence table: older journals gain them without a version change.
PROVENANCE = """
ALTER TABLE {s}.records ADD COLUMN IF NOT EXISTS writer text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS generation bigint
"""

# Not in SCHEMA_TABLES: a journal made before cluster mode gains it without a version change.
FENCE_TABLE = """
CREATE TABLE IF NOT EXISTS {s}.partition_fence (
    partition integer PRIMARY KEY,
    generation bigint NOT NULL
)
"""

RAISE_FENCE = """
INSERT INTO {s}.partition_fence AS f (partition, generation) VALUES (%s, %s)
ON CONFLICT (partition) DO UPDATE SET generation = GREATEST(f.generation, excluded.generation)
RETURNING generation
"""

READ_FENCES = """
SELECT partition, generation FROM {s}.partition_fence WHERE partition = ANY(%s) FOR SHARE
"""

HEAD_COLUMNS = "conversation_id, seq, epoch, owner, status, unfinished, updated_at"
