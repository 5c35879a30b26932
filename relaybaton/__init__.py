"""relaybaton: an asyncio actor runtime for multi-agent, multi-model LLM work."""
