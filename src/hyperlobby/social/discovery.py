"""How a node finds peers: join a topic (a discovery key), get connections.

The social layer asks for nothing more than :class:`Discovery`: ``start`` it with the node's
:class:`~hyperlobby.wire.replication.Replication`, ``join``/``leave`` topics as friends come and
go, ``close`` it at the end. Every connection a discovery makes is handed to the Replication,
which offers every core in the store on it, so one connection to a friend's node serves all
archives both sides hold (friends of friends included).

:class:`DirectDiscovery` is the implementation for static addresses (``--peer HOST:PORT``): it
keeps one connection to each address, reconnecting with a capped backoff when it drops, and
ignores topics (any peer may hold any archive). A DHT implementation plugs in by implementing
the same four methods; nothing in the node changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Protocol

from hyperlobby.errors import HyperlobbyError, SocialError
from hyperlobby.wire.replication import Replication

_log = logging.getLogger(__name__)


class Discovery(Protocol):
    async def start(self, replication: Replication) -> None: ...

    def join(self, topic: bytes) -> None: ...

    def leave(self, topic: bytes) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_address(text: str, *, default_host: str = "127.0.0.1") -> Address:
    """``HOST:PORT`` (or ``:PORT`` / ``PORT``) -> :class:`Address`; errors say what was wrong."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        host, port_text = "", text.strip()
    host = host.strip("[]") or default_host
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise SocialError("an address is HOST:PORT with a port from 0 to 65535", address=text)
    return Address(host, int(port_text))


class DirectDiscovery:
    """Keep connections to a fixed list of addresses; topics are ignored."""

    def __init__(
        self,
        addresses: list[Address],
        *,
        min_backoff: float = 0.2,
        max_backoff: float = 5.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.addresses = list(addresses)
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.connect_timeout = connect_timeout
        self.connected: set[Address] = set()
        self.last_error: dict[Address, str] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, replication: Replication) -> None:
        loop = asyncio.get_running_loop()
        for addr in self.addresses:
            self._tasks.append(loop.create_task(self._keep(replication, addr)))

    def join(self, topic: bytes) -> None:
        """Static peers are asked for every archive already; nothing to do per topic."""

    def leave(self, topic: bytes) -> None:
        """See :meth:`join`."""

    async def _keep(self, replication: Replication, addr: Address) -> None:
        backoff = self.min_backoff
        while not replication.closed:
            try:
                closed = await replication.connect(addr.host, addr.port, timeout=self.connect_timeout)
            except HyperlobbyError as err:
                self.last_error[addr] = err.message
                _log.debug("peer %s unreachable: %s", addr, err)
                await asyncio.sleep(backoff)
                backoff = min(self.max_backoff, backoff * 2)
                continue
            self.connected.add(addr)
            self.last_error.pop(addr, None)
            backoff = self.min_backoff
            try:
                await asyncio.shield(closed)
            except asyncio.CancelledError:
                closed.cancel()
                raise
            except Exception as err:  # the connection ended with an error: reconnect
                self.last_error[addr] = str(err)
            finally:
                self.connected.discard(addr)
            await asyncio.sleep(backoff)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()


__all__ = ["Address", "DirectDiscovery", "Discovery", "parse_address"]
