"""An MCP client: the tools of an external MCP server, as tools of relaybaton agents.

``open_mcp_tools`` connects to a server (a command run over stdio, or a streamable HTTP
URL) with the official ``mcp`` SDK, lists its tools and gives back one ``SchemaTool`` per
tool, for as long as the ``async with`` block runs. A call goes through the agent's ordinary
tool path: the arguments are checked against the tool's ``inputSchema`` before anything is
sent, approvals and trace events apply as for local tools. The server's answer is its text
content, joined; ``isError`` becomes a tool error the model reads and can recover from.

The SDK is imported only here and only when a server is opened, so the rest of relaybaton
works without the ``mcp`` extra.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from relaybaton.actors import SchemaTool, ToolContext
from relaybaton.errors import ConfigError, ToolError

if TYPE_CHECKING:
    from mcp import Client

__all__ = ["exposed_tool_name", "open_mcp_tools"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def exposed_tool_name(server: str, tool: str) -> str:
    """The name a model sees for ``tool`` of ``server``: ``server_tool``, 64 chars at most."""
    return _UNSAFE.sub("_", f"{server}_{tool}")[:64]


def _require_mcp() -> None:
    try:
        import mcp  # noqa: F401, PLC0415 - only looks whether the optional extra is there
    except ImportError as exc:
        raise ConfigError(
            "attaching the tools of an MCP server needs the official MCP SDK, which is not "
            "installed; install it with: pip install 'relaybaton[mcp]'"
        ) from exc


def _text_of(result: Any) -> str:
    """The text content of a tool result, joined; other content is named by its type."""
    parts: list[str] = []
    for item in result.content:
        text = getattr(item, "text", None)
        parts.append(text if isinstance(text, str) else f"[{getattr(item, 'type', 'content')}]")
    return "\n".join(parts)


def _make_tool(client: Client, server: str, declaration: Any, timeout: float) -> SchemaTool:
    name: str = declaration.name
    exposed = exposed_tool_name(server, name)

    async def call(arguments: dict[str, Any], context: ToolContext) -> str:
        from mcp import MCPError  # noqa: PLC0415 - optional extra, present once connected

        try:
            result = await client.call_tool(name, arguments, read_timeout_seconds=timeout)
        except MCPError as exc:
            raise ToolError(f"MCP server {server!r} refused {name}: {exc}", tool=exposed) from exc
        text = _text_of(result)
        if result.is_error:
            raise ToolError(text or f"MCP server {server!r}: {name} failed", tool=exposed)
        return text

    schema = declaration.input_schema if isinstance(declaration.input_schema, Mapping) else {}
    annotations = declaration.annotations
    read_only = bool(getattr(annotations, "read_only_hint", False)) if annotations else False
    idempotent = bool(getattr(annotations, "idempotent_hint", False)) if annotations else False
    return SchemaTool(
        exposed,
        call,
        description=declaration.description or declaration.title or name,
        parameters={k: v for k, v in schema.items() if k != "$schema"},
        # An external effect of unknown kind may not run twice after a crash, unless the
        # server says it is harmless to.
        retry_safe=read_only or idempotent,
    )


@asynccontextmanager
async def open_mcp_tools(
    server: str,
    *,
    command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    url: str | None = None,
    timeout: float = 30.0,
) -> AsyncIterator[dict[str, SchemaTool]]:
    """Connect to an MCP server; yield its tools by their own names until the block ends.

    Give ``command`` (the program and its arguments, run as a subprocess speaking MCP over
    stdio, with ``env`` added to the environment) or ``url`` (streamable HTTP). Calls may
    run concurrently; each waits ``timeout`` seconds at most for its answer. On exit the
    session is closed and a subprocess is ended.

    Raises:
        ConfigError: neither or both of ``command`` and ``url``, the ``mcp`` extra is
            missing, or the server cannot be reached or does not answer ``tools/list``.
    """
    if (command is None) == (url is None) or (command is not None and not command):
        raise ConfigError(f"MCP server {server!r}: give a non-empty command or a url, not both")
    _require_mcp()
    from mcp import Client, MCPError, StdioServerParameters  # noqa: PLC0415 - optional extra

    target: StdioServerParameters | str
    if command is not None:
        target = StdioServerParameters(
            command=command[0], args=list(command[1:]), env=dict(env or {}) or None, cwd=cwd
        )
    else:
        assert url is not None
        target = url
    where = " ".join(command) if command is not None else url
    failed: Exception | None = None
    async with AsyncExitStack() as stack:
        try:
            client = await stack.enter_async_context(Client(target, read_timeout_seconds=timeout))
            declarations: list[Any] = []
            cursor: str | None = None
            while True:
                listing = await client.list_tools(cursor=cursor)
                declarations.extend(listing.tools)
                cursor = listing.next_cursor
                if not cursor:
                    break
        except (OSError, MCPError) as exc:
            raise ConfigError(
                f"MCP server {server!r}: cannot start, reach or list the tools of {where}: {exc}"
            ) from exc
        try:
            yield {d.name: _make_tool(client, server, d, timeout) for d in declarations}
        except Exception as exc:
            # The SDK's task groups would wrap the caller's error in an exception group;
            # close the session cleanly first, then raise the error as it was.
            failed = exc
    if failed is not None:
        raise failed
