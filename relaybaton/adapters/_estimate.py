"""Token counts for a call whose server did not report them, estimated from the text.

llama.cpp ignores ``stream_options.include_usage``, and some servers copying the OpenAI
API send no usage at all; counting 0 would blind budgets and cost metrics. An exact count
needs the model's own tokenizer, and the usual ones (tiktoken's encodings among them) are
downloaded on first use, which an offline machine cannot do; so the count is estimated by
a heuristic per model family, and the usage is marked ``estimated`` wherever it goes (the
ledger, the trace, the metrics).

The heuristic: text in Latin scripts runs at about ``CHARS_PER_TOKEN`` characters per
token for the family's tokenizer (OpenAI's o200k and Gemini's about 4, Anthropic's about
3.5, the open-weight families about 3.7), and never fewer tokens than 1.3 per word (short
words and punctuation are tokens of their own); every other character (CJK, emoji) counts
as a token. Each message adds its framing (role and separators, 4 tokens), as the chat
templates do. Expect ±15% on English prose, more on code.
"""

from __future__ import annotations

import math

import msgspec

from relaybaton.adapters._chat import (
    AssistantMessage,
    ModelRequest,
    ModelResponse,
    ToolResultMessage,
    Usage,
    UserMessage,
)

__all__ = ["CHARS_PER_TOKEN", "estimate_tokens", "with_estimated_usage"]

CHARS_PER_TOKEN = {"openai": 4.0, "gemini": 4.0, "anthropic": 3.5}
_DEFAULT_CHARS_PER_TOKEN = 3.7  # llama, qwen, mistral, minimax, deepseek ...
_WORD_TOKENS = 1.3
_FRAMING = 4  # role and separators per message
_IMAGE_TOKENS = 765  # a 1024 x 1024 image at OpenAI's high detail; others are near it


def estimate_tokens(text: str, family: str) -> int:
    """Estimated tokens of ``text`` for the tokenizer of ``family`` (a provider name)."""
    if not text:
        return 0
    wide = sum(1 for char in text if ord(char) > 0x2FF)
    narrow = len(text) - wide
    per = CHARS_PER_TOKEN.get(family, _DEFAULT_CHARS_PER_TOKEN)
    words = len(text.split()) if narrow else 0
    return wide + max(math.ceil(narrow / per), math.ceil(words * _WORD_TOKENS))


def _input_tokens(request: ModelRequest, family: str) -> int:
    total = estimate_tokens(request.instructions, family) + _FRAMING
    for message in request.messages:
        total += _FRAMING
        if isinstance(message, UserMessage):
            total += estimate_tokens(message.text, family) + _IMAGE_TOKENS * len(message.images)
        elif isinstance(message, AssistantMessage):
            total += estimate_tokens(message.text, family)
            total += sum(estimate_tokens(c.name + c.arguments, family) for c in message.tool_calls)
        elif isinstance(message, ToolResultMessage):
            total += estimate_tokens(message.content, family)
    for tool in request.tools:
        schema = msgspec.json.encode(tool.parameters).decode()
        total += estimate_tokens(f"{tool.name} {tool.description} {schema}", family)
    return total


def with_estimated_usage(
    request: ModelRequest, response: ModelResponse, family: str
) -> ModelResponse:
    """``response`` with its token counts estimated when the server reported none."""
    usage = response.usage
    if usage.input_tokens or usage.output_tokens:
        return response
    message = response.message
    output = estimate_tokens(message.text, family) + sum(
        estimate_tokens(c.name + c.arguments, family) for c in message.tool_calls
    )
    estimated = Usage(
        input_tokens=_input_tokens(request, family), output_tokens=output, estimated=True
    )
    return msgspec.structs.replace(response, usage=estimated)
