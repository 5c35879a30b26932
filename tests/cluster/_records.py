"""A journal write of one record, for the store tests that only care whether it lands."""

from __future__ import annotations

import time

from relaybaton.runtime._store import EncodedRecord, Head, WriteBatch


def batch(conversation_id: str, seq: int) -> WriteBatch:
    return WriteBatch(
        records=[
            EncodedRecord(conversation_id=conversation_id, seq=seq, epoch=0, kind="x", body=b"\x90")
        ],
        heads={
            conversation_id: Head(
                conversation_id=conversation_id,
                seq=seq,
                epoch=0,
                owner="triage",
                status="active",
                unfinished=False,
                updated_at=time.time(),
            )
        },
    )
