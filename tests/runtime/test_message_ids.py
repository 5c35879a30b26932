"""Message ids made for messages that came without one: unique, whatever seeds ``random``."""

from __future__ import annotations

import os
import random
import re

from relaybaton.runtime._message_limits import new_message_id


def test_ids_have_the_documented_shape_and_do_not_repeat() -> None:
    ids = [new_message_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"m-[0-9a-f]{16}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_seeding_the_random_module_does_not_repeat_ids() -> None:
    random.seed(42)
    first = [new_message_id() for _ in range(3)]
    random.seed(42)  # another process, or a test, seeding for repeatable runs
    assert [new_message_id() for _ in range(3)] != first


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.write(write, new_message_id().encode())
        os._exit(0)
    os.close(write)
    theirs = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert theirs != new_message_id()
