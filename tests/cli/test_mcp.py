"""The ``mcp memory`` command's options."""

from __future__ import annotations

import argparse

import pytest

from relaybaton.cli._mcp import add_mcp_commands


def test_commands_register_on_a_parent_parser() -> None:
    parser = argparse.ArgumentParser(prog="relaybaton")
    add_mcp_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["mcp", "memory", "--store", "x.db", "--namespace", "u1"])
    assert (args.store, args.compat, args.namespace) == ("x.db", "strict", "u1")
    with pytest.raises(SystemExit):
        parser.parse_args(["mcp", "memory", "--store", "x.db", "--compat", "loose"])
