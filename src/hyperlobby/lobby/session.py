"""A hosted session and a guest's join: a lobby wired to rtc.

:class:`HostSession` runs rtc's :func:`~hyperlobby.rtc.serve` over a :class:`HostLobby`, and
turns the rtc host's peer changes into lobby bookkeeping: a guest whose channel opened is
``connected`` (its transient files go), a guest that went away ``left`` (its place frees up),
and ``on_peers`` gets the count for ``session.json``. :func:`join` runs a guest through the
seed's four steps after admission, and removes the guest's transient offer once connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from hyperlobby.lobby.lobby import GuestLobby, HostLobby
from hyperlobby.rtc import RtcGuest, RtcHost
from hyperlobby.rtc import join as rtc_join
from hyperlobby.rtc import serve as rtc_serve

log = logging.getLogger(__name__)


class HostSession:
    """One hosted session: ``await start()``, later ``await close()``."""

    def __init__(
        self,
        lobby: HostLobby,
        rtc: RtcHost,
        *,
        on_peers: Callable[[int], None] | None = None,
        expire_every: float = 5.0,
    ) -> None:
        self.lobby = lobby
        self.rtc = rtc
        self.on_peers = on_peers
        self.expire_every = expire_every
        self._present: set[str] = set()
        self._serve: asyncio.Task[None] | None = None
        self._expire: asyncio.Task[None] | None = None
        rtc.on_peers_changed = self._peers_changed

    async def start(self) -> HostSession:
        await self.lobby.start()
        loop = asyncio.get_running_loop()
        self._serve = loop.create_task(rtc_serve(self.rtc, self.lobby), name="lobby-serve")
        self._expire = loop.create_task(self._expire_loop(), name="lobby-expire")
        return self

    @property
    def peers(self) -> int:
        return self.rtc.peers

    def _peers_changed(self, count: int) -> None:
        now = set(self.rtc.guests)
        for guest in sorted(now - self._present):
            self.lobby.connected(guest)
        for guest in sorted(self._present - now):
            self.lobby.left(guest)
        self._present = now
        if self.on_peers is not None:
            try:
                self.on_peers(count)
            except Exception:
                log.exception("lobby: on_peers failed")

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(self.expire_every)
            for guest in self.lobby.expire():
                await self.rtc.kick(guest, "did not connect")

    async def close(self) -> None:
        for task in (self._expire,):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.rtc.close()
        await self.lobby.close()
        if self._serve is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._serve, 5.0)


async def join(lobby: GuestLobby, guest: RtcGuest, *, timeout: float = 30.0) -> None:
    """Admission, then the four steps; returns once the host has welcomed us. Raises
    :class:`~hyperlobby.errors.AdmissionRefused` (with the host's reason) when refused."""
    async with asyncio.timeout(timeout):
        await lobby.host_record()
        await lobby.admit()
        await rtc_join(guest, lobby, timeout=timeout)
    lobby.connected()


__all__ = ["HostSession", "join"]
