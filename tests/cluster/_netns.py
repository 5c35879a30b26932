"""A network namespace joined to this machine by a veth pair: a node that can be cut off.

The namespace gets ``10.213.N.2/30``, this machine's end of the pair ``10.213.N.1`` (``N``
random, so parallel runs do not collide). A process started with :meth:`Namespace.argv`
lives inside it and reaches this machine's servers only through the pair; :meth:`cut`
takes this machine's end down (packets are dropped, as on a failed link: connections
time out, none is refused) and :meth:`heal` brings it back.

Needs root and iproute2 (``ip netns``); :func:`netns_problem` says why not, when not.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import uuid

__all__ = ["Namespace", "netns_problem"]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def netns_problem() -> str | None:
    """Why a namespace cannot be made here, or None when it can."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (`ip netns add` is refused to other users)"
    probe = f"rbprobe{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"`ip netns add` failed here: {exc.stderr.decode(errors='replace').strip()}"
    _ip("netns", "del", probe)
    return None


class Namespace:
    """One namespace and its veth pair; :meth:`close` removes both."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name = f"rbns{tag}"
        self.outside = f"rbo{tag}"
        self.inside = f"rbi{tag}"
        subnet = random.Random(tag).randrange(256)
        self.host_ip = f"10.213.{subnet}.1"
        self.ip = f"10.213.{subnet}.2"
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self.outside, "type", "veth", "peer", "name", self.inside)
            _ip("link", "set", self.inside, "netns", self.name)
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self.outside)
            _ip("link", "set", self.outside, "up")
            self._inside("addr", "add", f"{self.ip}/30", "dev", self.inside)
            self._inside("link", "set", self.inside, "up")
            self._inside("link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def _inside(self, *args: str) -> None:
        _ip("netns", "exec", self.name, "ip", *args)

    def argv(self, command: list[str]) -> list[str]:
        """``command`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *command]

    def cut(self) -> None:
        _ip("link", "set", self.outside, "down")

    def heal(self) -> None:
        _ip("link", "set", self.outside, "up")

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.outside], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
