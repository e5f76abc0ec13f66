"""Helpers for lobby tests: users with in-memory stores, replicating over 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hyperlobby.core.store import Store
from hyperlobby.drive import Hyperdrive
from hyperlobby.lobby import GuestLobby, HostLobby, HostSession, LobbyEvent, Member, guest_lobby, host_lobby
from hyperlobby.rtc import IceConfig, RtcGuest, RtcHost
from hyperlobby.wire.replication import Replication

WAIT = 20.0
LOOPBACK = IceConfig(loopback_only=True)


@dataclass
class User:
    name: str
    store: Store
    identity: Hyperdrive
    replication: Replication
    port: int | None = None

    @property
    def member(self) -> Member:
        pair = self.identity.core.key_pair
        assert pair is not None
        return Member(self.identity.key, pair)

    @property
    def gid(self) -> str:
        return self.identity.key.hex()


async def make_user(name: str, *, listen: bool = False, store: Store | None = None) -> User:
    store = store if store is not None else Store()
    identity = Hyperdrive(store.namespace("hyperlobby/identity"))
    pair = identity.core.key_pair
    rep = Replication(store, key_pair=pair, keepalive=None)
    user = User(name, store, identity, rep)
    if listen:
        _, user.port = await rep.listen("127.0.0.1", 0)
    return user


async def close_user(user: User) -> None:
    await user.replication.close()
    user.store.close()


async def until(pred: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = pred()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Hosted:
    user: User
    lobby: HostLobby
    rtc: RtcHost
    session: HostSession
    events: list[LobbyEvent] = field(default_factory=list)
    peers: list[int] = field(default_factory=list)

    def kinds(self, kind: str) -> list[str]:
        return [e.guest for e in self.events if e.kind == kind]


async def host(
    user: User, kind: str, *, max_peers: int = 4, password: str | None = None, **rtc: Any
) -> Hosted:
    events: list[LobbyEvent] = []
    lobby = host_lobby(
        kind,
        user.store,
        user.replication,
        user.member,
        max_peers=max_peers,
        password=password,
        on_event=events.append,
    )
    rtc_host = RtcHost(max_peers, ice=LOOPBACK, **rtc)
    hosted = Hosted(user, lobby, rtc_host, HostSession(lobby, rtc_host), events)
    hosted.session.on_peers = hosted.peers.append
    await hosted.session.start()
    return hosted


async def connect(guest: User, host_user: User) -> None:
    assert host_user.port is not None
    await guest.replication.connect("127.0.0.1", host_user.port)


def guest_side(user: User, kind: str, lobby_key: bytes, password: str | None = None) -> GuestLobby:
    return guest_lobby(
        kind, user.store, user.replication, lobby_key, user.member, password=password, timeout=WAIT
    )


def rtc_guest(user: User, **kwargs: Any) -> RtcGuest:
    return RtcGuest(user.gid, ice=LOOPBACK, **kwargs)


async def leave(guest: RtcGuest) -> None:
    with contextlib.suppress(Exception):
        await guest.leave()
