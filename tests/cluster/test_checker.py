"""The history checker catches each property broken alone, and passes consistent runs.

A checker that passes everything proves nothing: each test here starts from a consistent
history and journal (``_synthetic.build``), breaks exactly one thing the way a faulty
cluster would, and expects the checker to name that property.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cluster._checker import Case, Entry, FinishedTurn, check, load_case, save_case
from tests.cluster._history import History, Op, ReplySeen
from tests.cluster._synthetic import Built, Fate, build

F = Fate


def _properties(built: Built) -> set[str]:
    return {v.property for v in check(built.history, built.journals)}


def _renumber(entries: list[Entry]) -> list[Entry]:
    return [msgspec.structs.replace(e, seq=n) for n, e in enumerate(entries, 1)]


def _ops_of(built: Built, mid: str, kind: str) -> int:
    return next(
        i for i, op in enumerate(built.history.ops) if op.message_id == mid and op.type == kind
    )


def test_a_consistent_run_passes() -> None:
    built = build([[F.COMPLETED, F.HANDED_OFF, F.APPROVAL], [F.UNKNOWN_APPLIED, F.REFUSED]])
    assert check(built.history, built.journals) == []


def test_an_acknowledged_message_missing_from_the_journal_is_lost() -> None:
    built = build([[F.COMPLETED, F.COMPLETED]])
    journal = built.journals["c0"]
    built.journals["c0"] = _renumber([e for e in journal if not e.message_id.endswith("m1")][:-1])
    assert _properties(built) == {"lost"}


def test_a_conversation_with_no_journal_at_all_loses_its_messages() -> None:
    built = build([[F.COMPLETED]])
    del built.journals["c0"]
    assert _properties(built) == {"lost"}


def test_a_message_accepted_twice_is_duplicated() -> None:
    built = build([[F.COMPLETED, F.COMPLETED]])
    journal = built.journals["c0"]
    # The first turn once more after the second: accepted, started and answered again.
    built.journals["c0"] = _renumber(journal + journal[:2])
    assert "duplicated" in _properties(built)
    assert _properties(built) <= {"duplicated", "phantom-reply"}


def test_a_turn_finished_twice_is_duplicated() -> None:
    built = build([[F.COMPLETED]])
    journal = built.journals["c0"]
    built.journals["c0"] = _renumber(journal + journal[-1:])
    assert _properties(built) == {"duplicated"}


def test_an_unknown_message_applied_twice_is_duplicated() -> None:
    built = build([[F.UNKNOWN_APPLIED]])
    journal = built.journals["c0"]
    built.journals["c0"] = _renumber(journal + journal)
    assert _properties(built) == {"duplicated"}


def test_an_unknown_message_applied_once_or_never_is_fine() -> None:
    built = build([[F.UNKNOWN_APPLIED, F.UNKNOWN_DROPPED, F.COMPLETED]])
    assert check(built.history, built.journals) == []


def test_a_refused_message_that_was_journaled_anyway_is_caught() -> None:
    built = build([[F.UNKNOWN_APPLIED]])
    i = _ops_of(built, "c0-m0", "unknown")
    built.history.ops[i] = msgspec.structs.replace(built.history.ops[i], type="fail")
    assert _properties(built) == {"failed-applied"}


def test_a_message_refused_once_then_sent_again_and_acknowledged_is_fine() -> None:
    built = build([[F.COMPLETED]])
    invoke = built.history.ops[0]
    refused = msgspec.structs.replace(invoke, type="fail", error="connection refused")
    built.history.ops[1:1] = [refused, msgspec.structs.replace(invoke, time=invoke.time + 0.1)]
    assert check(built.history, built.journals) == []


def test_acknowledged_messages_accepted_out_of_order_are_caught() -> None:
    built = build([[F.COMPLETED, F.COMPLETED]])
    first, second = built.journals["c0"][:2], built.journals["c0"][2:]
    built.journals["c0"] = _renumber(second + first)
    assert _properties(built) == {"order"}


def test_an_epoch_that_falls_is_caught() -> None:
    built = build([[F.HANDED_OFF, F.COMPLETED]])
    journal = built.journals["c0"]
    journal[-2] = msgspec.structs.replace(journal[-2], epoch=0)  # accepted under the old epoch
    assert "epoch-regressed" in _properties(built)


def test_a_record_missing_from_the_middle_is_a_gap() -> None:
    built = build([[F.HANDED_OFF]])
    journal = built.journals["c0"]
    del journal[2]  # the baton_accepted record, which no other property reads
    assert _properties(built) == {"seq-gap"}


def test_two_nodes_writing_under_one_epoch_are_caught() -> None:
    built = build([[F.COMPLETED, F.COMPLETED]])
    journal = built.journals["c0"]
    journal[2] = msgspec.structs.replace(journal[2], writer="n2")
    assert _properties(built) == {"two-writers"}


def test_two_nodes_writing_under_one_lease_generation_are_caught() -> None:
    built = build([[F.COMPLETED, F.COMPLETED]])
    journal = built.journals["c0"]
    for i, entry in enumerate(journal):
        journal[i] = msgspec.structs.replace(entry, generation=5)
    journal[3] = msgspec.structs.replace(journal[3], writer="n2")
    built.history.ops[-1] = msgspec.structs.replace(built.history.ops[-1], node="n2")
    assert _properties(built) == {"two-writers"}


def test_a_takeover_under_a_new_lease_generation_is_not_two_writers() -> None:
    built = build([[F.COMPLETED, F.COMPLETED]])
    journal = built.journals["c0"]
    for i, entry in enumerate(journal):
        journal[i] = msgspec.structs.replace(
            entry, generation=5 if i < 2 else 8, writer="n1" if i < 2 else "n2"
        )
    built.history.ops[-1] = msgspec.structs.replace(built.history.ops[-1], node="n2")
    assert check(built.history, built.journals) == []


def test_a_late_write_under_an_older_lease_generation_is_caught() -> None:
    built = build([[F.COMPLETED, F.COMPLETED]])
    journal = built.journals["c0"]
    for i, entry in enumerate(journal):
        journal[i] = msgspec.structs.replace(entry, generation=8)
    journal[2] = msgspec.structs.replace(journal[2], generation=5)
    assert "generation-regressed" in _properties(built)


def test_a_reply_the_journal_does_not_hold_is_a_phantom() -> None:
    built = build([[F.COMPLETED]])
    i = _ops_of(built, "c0-m0", "ok")
    built.history.ops[i] = msgspec.structs.replace(
        built.history.ops[i], replies=(ReplySeen(agent="triage", text="from a deposed node"),)
    )
    assert _properties(built) == {"phantom-reply"}


def test_a_reply_under_another_epoch_than_the_journal_is_a_phantom() -> None:
    built = build([[F.HANDED_OFF]])
    i = _ops_of(built, "c0-m0", "ok")
    built.history.ops[i] = msgspec.structs.replace(built.history.ops[i], epoch=0)
    assert _properties(built) == {"phantom-reply"}


def test_an_approval_id_the_journal_does_not_hold_is_a_phantom() -> None:
    built = build([[F.APPROVAL]])
    i = _ops_of(built, "c0-m0", "ok")
    built.history.ops[i] = msgspec.structs.replace(built.history.ops[i], approval_ids=("nope",))
    assert "phantom-reply" in _properties(built)


def test_a_reply_from_a_node_that_did_not_journal_it_is_caught() -> None:
    built = build([[F.COMPLETED]])
    i = _ops_of(built, "c0-m0", "ok")
    built.history.ops[i] = msgspec.structs.replace(built.history.ops[i], node="n2")
    assert _properties(built) == {"reply-from-other-node"}


def test_a_completed_answer_whose_turn_the_journal_never_ended_is_lost() -> None:
    built = build([[F.COMPLETED]])
    built.journals["c0"] = built.journals["c0"][:-1]
    assert _properties(built) == {"lost"}


def test_a_text_the_journal_altered_is_caught() -> None:
    built = build([[F.COMPLETED]])
    journal = built.journals["c0"]
    journal[0] = msgspec.structs.replace(journal[0], text="something else")
    assert _properties(built) == {"altered"}


def test_an_acknowledged_decision_missing_from_the_journal_is_lost() -> None:
    built = build([[F.APPROVAL]])
    built.journals["c0"] = _renumber(
        [e for e in built.journals["c0"] if e.kind != "approval_decided"]
    )
    assert _properties(built) == {"decision-lost"}


def test_a_decision_overwritten_by_a_later_one_is_caught() -> None:
    built = build([[F.APPROVAL]])
    journal = built.journals["c0"]
    at = next(i for i, e in enumerate(journal) if e.kind == "approval_decided")
    journal[at] = msgspec.structs.replace(journal[at], decision="reject")
    assert _properties(built) == {"decision-overwritten"}


def test_a_decision_journaled_twice_is_duplicated() -> None:
    built = build([[F.APPROVAL]])
    journal = built.journals["c0"]
    at = next(i for i, e in enumerate(journal) if e.kind == "approval_decided")
    journal.insert(at, journal[at])
    built.journals["c0"] = _renumber(journal)
    assert _properties(built) == {"duplicated"}


def test_a_snapshot_stands_for_the_turns_it_pruned() -> None:
    built = build([[F.COMPLETED, F.COMPLETED]])
    journal = built.journals["c0"]
    snapshot = Entry(
        seq=3,
        epoch=0,
        kind="snapshot",
        finished=(FinishedTurn(message_id="c0-m0", replies=(("triage", "answer to c0-m0"),)),),
    )
    built.journals["c0"] = [snapshot] + [
        msgspec.structs.replace(e, seq=e.seq + 1) for e in journal[2:]
    ]
    assert check(built.history, built.journals) == []


_fates = st.sampled_from(list(Fate))
_workloads = st.lists(st.lists(_fates, min_size=1, max_size=6), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_workloads)
def test_every_consistent_workload_passes(workload: list[list[Fate]]) -> None:
    built = build(workload)
    assert check(built.history, built.journals) == []


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_workloads, st.data())
def test_dropping_any_acknowledged_message_is_always_caught(
    workload: list[list[Fate]], data: st.DataObject
) -> None:
    built = build(workload)
    acknowledged = [op for op in built.history.ops if op.type == "ok" and op.f == "send"]
    if not acknowledged:
        return
    victim = data.draw(st.sampled_from(acknowledged))
    kept = [e for e in built.journals[victim.conversation_id] if e.message_id != victim.message_id]
    built.journals[victim.conversation_id] = _renumber(kept)
    assert "lost" in _properties(built)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_workloads, st.data())
def test_repeating_any_journaled_message_is_always_caught(
    workload: list[list[Fate]], data: st.DataObject
) -> None:
    built = build(workload)
    accepted = [(cid, e) for cid, j in built.journals.items() for e in j if e.kind == "accepted"]
    if not accepted:
        return
    cid, entry = data.draw(st.sampled_from(accepted))
    built.journals[cid] = _renumber([*built.journals[cid], entry])
    assert "duplicated" in _properties(built)


def test_a_history_that_completes_what_it_never_invoked_is_refused() -> None:
    done = Op(process=1, type="ok", f="send", conversation_id="c", time=1.0, message_id="m")
    with pytest.raises(ValueError, match="never invoked"):
        check(History(ops=[done]), {})


def test_an_invoke_never_completed_counts_as_unknown() -> None:
    built = build([[F.COMPLETED]])
    built.history.ops = built.history.ops[:-1]  # the client died waiting
    built.journals["c0"] = []
    assert check(built.history, built.journals) == []


def test_a_failing_case_saves_and_loads_unchanged(tmp_path: Path) -> None:
    built = build([[F.COMPLETED, F.APPROVAL]])
    del built.journals["c0"][0]
    found = [str(v) for v in check(built.history, built.journals)]
    case = Case(
        seed=7,
        scenario="synthetic",
        history=built.history,
        journals=built.journals,
        violations=found,
    )
    loaded = load_case(save_case(tmp_path / "case.json", case))
    assert loaded == case
    assert [str(v) for v in check(loaded.history, loaded.journals)] == found
