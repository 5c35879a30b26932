"""Datasets: JSONL, JSON and CSV items, multi-turn, expected values, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaybaton.errors import ConfigError
from relaybaton.evals import EvalItem, load_dataset


def test_jsonl_items_keep_turns_expected_values_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"id": "a", "messages": ["hi", "refund $40"], "expected": {"reply": "ok"}, '
        '"metadata": {"tag": "refund"}, "source": "web"}\n\n'
        '{"input": "just one"}\n'
    )
    first, second = load_dataset(path)
    assert first == EvalItem(
        id="a",
        messages=("hi", "refund $40"),
        expected={"reply": "ok"},
        metadata={"source": "web", "tag": "refund"},
    )
    assert first.expected_value("reply") == "ok"
    assert second.id == "item-2"
    assert second.messages == ("just one",)


def test_csv_items_take_turns_split_by_bars_or_a_json_list(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        'id,messages,expected,tier\nx,"hi | refund $40",done,gold\ny,"[""a"", ""b""]",'
        '"{""reply"": ""b""}",\n'
    )
    x, y = load_dataset(path)
    assert x.messages == ("hi", "refund $40")
    assert x.expected == "done"
    assert x.metadata == {"tier": "gold"}
    assert y.messages == ("a", "b")
    assert y.expected == {"reply": "b"}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("d.jsonl", '{"id": "a"}\n', "d.jsonl:1: `messages` must be a non-empty string"),
        ("d.jsonl", "{nope\n", "d.jsonl:1: not valid JSON"),
        ("d.jsonl", '{"id":"a","input":"x"}\n{"id":"a","input":"y"}\n', "'a' appears twice"),
        ("d.jsonl", '{"input": "x", "expected": 3}\n', "`expected` must be a string or an"),
        ("d.jsonl", "\n", "the dataset has no items"),
        ("d.csv", "id,question\n1,hi\n", "needs an `input` or `messages` column"),
        ("d.txt", "x", "unknown dataset format '.txt'"),
    ],
)
def test_a_bad_dataset_is_refused_naming_the_line_and_the_fix(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("$", r"\$").replace("(", r"\(")):
        load_dataset(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such dataset file"):
        load_dataset(tmp_path / "gone.jsonl")


turns = st.lists(
    st.text(min_size=1).filter(lambda t: t.strip() == t and "\n" not in t), min_size=1, max_size=4
)


@given(st.lists(st.tuples(turns, st.one_of(st.none(), st.text())), min_size=1, max_size=10))
def test_every_item_written_as_jsonl_reads_back_the_same(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[list[str], str | None]]
) -> None:
    path = tmp_path_factory.mktemp("d") / "d.jsonl"
    lines = [
        json.dumps({"id": f"i{n}", "messages": m, "expected": e}) for n, (m, e) in enumerate(rows)
    ]
    path.write_text("\n".join(lines))
    items = load_dataset(path)
    assert [(i.messages, i.expected) for i in items] == [(tuple(m), e) for m, e in rows]
