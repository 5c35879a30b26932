"""Round trips and structure rules, for any history.

For each provider: encoding a history and decoding the encoded messages gives the history
back (up to what the provider's wire cannot carry, listed in ``_normalise``); decoding the
provider's echo of an encoded assistant message gives that message back; and the encoded
history obeys the provider's structural rules.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaybaton.adapters import (
    AssistantMessage,
    ChatMessage,
    ImagePart,
    ModelRequest,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from relaybaton.adapters._anthropic import (
    decode_anthropic,
    decode_anthropic_messages,
    encode_anthropic,
)
from relaybaton.adapters._gemini import decode_gemini, decode_gemini_contents, encode_gemini
from relaybaton.adapters._openai import decode_openai, decode_openai_messages, encode_openai
from tests.adapters._wire import check_chat_request

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
names = st.from_regex(r"[a-z][a-z_]{0,9}", fullmatch=True)
json_values = st.none() | st.booleans() | st.integers(-1000, 1000) | texts
arguments = st.dictionaries(names, json_values, max_size=3).map(
    lambda d: msgspec.json.encode(d).decode()
)
images = st.one_of(
    st.builds(ImagePart, media_type=st.sampled_from(["image/png", "image/jpeg"]),
              data_base64=st.from_regex(r"[A-Za-z0-9+/]{4,12}", fullmatch=True)),
    st.builds(ImagePart, url=st.from_regex(r"https://img\.example/[a-z]{1,8}", fullmatch=True)),
)  # fmt: skip
user_messages = st.builds(UserMessage, text=texts, images=st.lists(images, max_size=2).map(tuple))


@st.composite
def tool_round(draw: st.DrawFn, ids: st.SearchStrategy[str]) -> list[ChatMessage]:
    """An assistant turn with tool calls, then one result per call, in call order."""
    count = draw(st.integers(1, 3))
    calls = tuple(
        ToolCall(id=draw(ids), name=draw(names), arguments=draw(arguments),
                 signature=draw(st.sampled_from(["", "c2ln"])))
        for _ in range(count)
    )  # fmt: skip
    text = draw(st.sampled_from(["", "Let me check."]))
    results: list[ChatMessage] = [
        ToolResultMessage(call_id=c.id, name=c.name, content=draw(texts),
                          is_error=draw(st.booleans()))
        for c in calls
    ]  # fmt: skip
    return [AssistantMessage(text=text, tool_calls=calls), *results]


@st.composite
def histories(draw: st.DrawFn, *, strict: bool) -> tuple[ChatMessage, ...]:
    """A history that starts with the user and records every call's result next to it.

    ``strict`` also keeps user and assistant turns alternating, so that no provider merges
    two of them into one; otherwise any order of turns is drawn.
    """
    counter = iter(range(10_000))
    ids = st.builds(lambda p: f"{p}{next(counter)}", st.sampled_from(["call_", "toolu_", "fc-"]))
    out: list[ChatMessage] = [draw(user_messages)]
    for _ in range(draw(st.integers(0, 6))):
        last = out[-1]
        kinds = ["user", "text", "tools"]
        if strict:
            if isinstance(last, UserMessage):
                kinds = ["text", "tools"]
            elif isinstance(last, AssistantMessage):
                kinds = ["user"]
        kind = draw(st.sampled_from(kinds))
        if kind == "user":
            out.append(draw(user_messages))
        elif kind == "text":
            out.append(AssistantMessage(text=draw(texts)))
        else:
            out += draw(tool_round(ids))
    return tuple(out)


def _normalise(history: tuple[ChatMessage, ...], provider: str) -> tuple[ChatMessage, ...]:
    """Drop what never goes on the wire, and what ``provider``'s wire cannot carry."""
    out: list[ChatMessage] = []
    for message in history:
        m = message
        if isinstance(m, UserMessage):
            m = msgspec.structs.replace(m, message_id="")
        elif isinstance(m, AssistantMessage):
            calls = m.tool_calls
            if provider != "gemini":  # only Gemini has call signatures
                calls = tuple(msgspec.structs.replace(c, signature="") for c in calls)
            m = AssistantMessage(text=m.text, tool_calls=calls)
        elif provider != "gemini":  # only Gemini names the tool in a result
            is_error = m.is_error and provider == "anthropic"  # OpenAI has no error flag
            m = msgspec.structs.replace(m, name="", is_error=is_error)
        out.append(m)
    return tuple(out)


def _wire(body: dict[str, object]) -> Any:
    return msgspec.json.decode(msgspec.json.encode(body))  # what the server would receive


@SETTINGS
@given(histories(strict=True))
def test_openai_encoding_round_trips(history: tuple[ChatMessage, ...]) -> None:
    body = _wire(encode_openai(ModelRequest(instructions="sys", messages=history), "m"))
    instructions, decoded = decode_openai_messages(body["messages"])
    assert instructions == "sys"
    assert decoded == _normalise(history, "openai")


@SETTINGS
@given(histories(strict=True))
def test_anthropic_encoding_round_trips(history: tuple[ChatMessage, ...]) -> None:
    body = _wire(encode_anthropic(ModelRequest(messages=history), "m"))
    assert decode_anthropic_messages(body["messages"]) == _normalise(history, "anthropic")


@SETTINGS
@given(histories(strict=True))
def test_gemini_encoding_round_trips(history: tuple[ChatMessage, ...]) -> None:
    body = _wire(encode_gemini(ModelRequest(messages=history)))
    assert decode_gemini_contents(body["contents"]) == _normalise(history, "gemini")


@SETTINGS
@given(histories(strict=True))
def test_decoding_each_providers_echo_of_an_assistant_turn_gives_it_back(
    history: tuple[ChatMessage, ...],
) -> None:
    for message in (m for m in history if isinstance(m, AssistantMessage)):
        request = ModelRequest(messages=(message,))
        openai_msg = _wire(encode_openai(request, "m"))["messages"][0]
        echo = {"model": "m", "choices": [{"index": 0, "message": openai_msg,
                                           "finish_reason": "stop"}]}  # fmt: skip
        assert (
            decode_openai(msgspec.json.encode(echo)).message == _normalise((message,), "openai")[0]
        )
        blocks = _wire(encode_anthropic(request, "m"))["messages"][0]["content"]
        echo = {"type": "message", "role": "assistant", "model": "m", "content": blocks,
                "stop_reason": "end_turn", "usage": {"input_tokens": 1}}  # fmt: skip
        got = decode_anthropic(msgspec.json.encode(echo)).message
        assert got == _normalise((message,), "anthropic")[0]
        turn = _wire(encode_gemini(request))["contents"][0]
        echo = {"candidates": [{"content": turn, "finishReason": "STOP"}]}
        assert decode_gemini(msgspec.json.encode(echo)).message == message


def _call_ids(history: tuple[ChatMessage, ...]) -> list[str]:
    return [c.id for m in history if isinstance(m, AssistantMessage) for c in m.tool_calls]


@SETTINGS
@given(histories(strict=False))
def test_openai_history_has_a_tool_message_right_after_each_call(
    history: tuple[ChatMessage, ...],
) -> None:
    messages = encode_openai(ModelRequest(messages=history), "m")["messages"]
    assert isinstance(messages, list)
    for i, m in enumerate(messages):
        if m["role"] == "assistant" and m.get("tool_calls"):
            ids = [c["id"] for c in m["tool_calls"]]
            following = messages[i + 1 : i + 1 + len(ids)]
            assert [f["role"] for f in following] == ["tool"] * len(ids)
            assert sorted(f["tool_call_id"] for f in following) == sorted(ids)


@SETTINGS
@given(histories(strict=False))
def test_anthropic_history_alternates_and_results_follow_their_tool_use(
    history: tuple[ChatMessage, ...],
) -> None:
    messages = encode_anthropic(ModelRequest(messages=history), "m")["messages"]
    assert isinstance(messages, list)
    roles = [m["role"] for m in messages]
    assert roles[0] == "user"
    assert all(a != b for a, b in itertools.pairwise(roles))
    for i, m in enumerate(messages):
        uses = [b["id"] for b in m["content"] if b["type"] == "tool_use"]
        if m["role"] == "assistant" and uses:
            nxt = messages[i + 1]["content"]
            results = [b["tool_use_id"] for b in nxt[: len(uses)] if b["type"] == "tool_result"]
            assert results == uses  # first in the very next user message
    seen = [b["tool_use_id"] for m in messages for b in m["content"] if b["type"] == "tool_result"]
    assert sorted(seen) == sorted(_call_ids(history))


@SETTINGS
@given(histories(strict=False))
def test_gemini_history_has_a_function_response_for_each_function_call(
    history: tuple[ChatMessage, ...],
) -> None:
    contents = encode_gemini(ModelRequest(messages=history))["contents"]
    assert isinstance(contents, list)
    roles = [c["role"] for c in contents]
    assert roles[0] == "user"
    assert all(a != b for a, b in itertools.pairwise(roles))
    for i, turn in enumerate(contents):
        calls = [p["functionCall"] for p in turn["parts"] if "functionCall" in p]
        if calls:
            nxt = contents[i + 1]["parts"][: len(calls)]
            responses = [p["functionResponse"] for p in nxt if "functionResponse" in p]
            assert [(r["id"], r["name"]) for r in responses] == [
                (c["id"], c["name"]) for c in calls
            ]


@given(
    histories(strict=False), st.booleans(), st.sampled_from(["max_completion_tokens", "max_tokens"])
)
@SETTINGS
def test_every_openai_request_is_one_the_strictest_compatible_servers_accept(
    history: tuple[ChatMessage, ...], stream: bool, max_tokens_field: str
) -> None:
    request = ModelRequest(instructions="Be brief.", messages=history, max_output_tokens=64)
    body = encode_openai(request, "m", stream=stream, max_tokens_field=max_tokens_field)
    assert check_chat_request(msgspec.json.encode(body)) is None


def test_the_strict_wire_refuses_a_null_assistant_content_as_llama_cpp_does() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ],
    }
    problem = check_chat_request(msgspec.json.encode(body))
    assert problem is not None
    assert "$.messages[1].content" in problem
    del body["messages"][1]["content"]  # type: ignore[attr-defined]
    assert check_chat_request(msgspec.json.encode(body)) is None
