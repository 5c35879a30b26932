"""A node process for the crash tests: consumes every partition of a prefix until killed.

``python -m tests.cluster._producer_node PREFIX SCHEMA``; with ``RELAYBATON_FAILPOINT``
set, it dies (status 137) where the failpoint says. It prints ``ready`` once consuming.
"""

from __future__ import annotations

import sys

import anyio

from relaybaton.cluster._producers import start_consumers
from relaybaton.cluster._subjects import ProducerSubjects
from tests.cluster._producing import HeldPartitions, connected, node_runtime


async def main(prefix: str, schema: str) -> None:
    async with (
        connected() as nc,
        node_runtime(schema) as runtime,
        start_consumers(nc, runtime, HeldPartitions(), subjects=ProducerSubjects(prefix)),
    ):
        print("ready", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
