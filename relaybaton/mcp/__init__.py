"""The Model Context Protocol: tools of any MCP server for agents, and the memory graph served.

``open_mcp_tools`` attaches another server's tools to agents through the ordinary tool path;
``serve_memory_stdio`` serves the knowledge graph to any MCP client in place of the
reference memory server.
"""

from relaybaton.mcp._client import open_mcp_tools
from relaybaton.mcp._memory_server import serve_memory_stdio

__all__ = ["open_mcp_tools", "serve_memory_stdio"]
