"""The session demo: three users, one hosts, two find the session through their friend's
archive, join through the lobby, talk over the data channel, one leaves, the host ends.

:func:`lobby_demo` is what ``make demo`` calls; it prints, through ``timeline.say``, each step
and the archive files that step wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path
from typing import Protocol

from hyperlobby.errors import HyperlobbyError
from hyperlobby.lobby.lobby import (
    DriveGuestLobby,
    DriveHostLobby,
    GuestLobby,
    HostLobby,
    LobbyEvent,
    LogGuestLobby,
    LogHostLobby,
    Member,
    detect_kind,
    guest_lobby,
    host_lobby,
    parse_entry,
)
from hyperlobby.lobby.session import HostSession, join
from hyperlobby.rtc import Closed, IceConfig, Left, Message, RtcGuest, RtcHost
from hyperlobby.social.discovery import Address
from hyperlobby.social.identity import Identity, system_clock
from hyperlobby.social.node import Node, NodeOptions

LOOPBACK = IceConfig(loopback_only=True)


class Timeline(Protocol):
    def say(self, who: str, what: str) -> None: ...


def _member(ident: Identity) -> Member:
    pair = ident.drive.core.key_pair
    assert pair is not None
    return Member(ident.key, pair)


def _short(path: str) -> str:
    """``/admitted/<64 hex>.bin`` -> ``/admitted/9af61d7f….bin``."""
    head, _, name = path.rpartition("/")
    stem, dot, ext = name.partition(".")
    return f"{head}/{stem[:8]}…{dot}{ext}" if len(stem) == 64 else path


def _host_files(lobby: HostLobby) -> str:
    if isinstance(lobby, DriveHostLobby):
        names = [_short(e.key) for e in lobby.drive.list("/")]
        return "lobby drive: " + (", ".join(names) or "(empty)")
    if isinstance(lobby, LogHostLobby):
        kinds = [parse_entry(lobby.core.get(i))[0] for i in range(lobby.core.length)]
        return "lobby log: " + " > ".join(kinds)
    return ""


def _guest_files(lobby: GuestLobby) -> str:
    if isinstance(lobby, DriveGuestLobby):
        names = [_short(e.key) for e in lobby.writer.list("/")]
        return "own drive: " + (", ".join(names) or "(empty)")
    if isinstance(lobby, LogGuestLobby):
        kinds = [parse_entry(lobby.writer.get(i))[0] for i in range(lobby.writer.length)]
        return "own log: " + " > ".join(kinds)
    return ""


def _text(body: str | bytes) -> str:
    return body if isinstance(body, str) else body.decode("utf-8", "replace")


def _set_peers(node: Node, peers: int) -> None:
    if node.heartbeat.hosting:
        node.heartbeat.set_peers(peers)


async def _next(guest: RtcGuest, kind: type, timeout: float = 10.0) -> object:
    while True:
        event = await guest.next_event(timeout)
        if isinstance(event, (kind, Closed)):
            return event


async def lobby_demo(home: Path, timeline: Timeline, *, kind: str = "drive") -> None:
    """Run the two/three-user session in ``home`` (three identity homes are made under it)."""
    say = timeline.say
    fast = NodeOptions(interval_ms=2000, grace_ms=2000, poll_s=0.3, read_timeout=3.0, control_socket=False)
    idents = {name: Identity.open(home / name.lower()) for name in ("Alice", "Bob", "Carol")}
    nodes: dict[str, Node] = {}
    session: HostSession | None = None
    guests: dict[str, RtcGuest] = {}
    try:
        for name, ident in idents.items():
            ident.init(name, system_clock())
            say(name.lower(), f"identity {ident.url} (profile.json)")
        alice = idents["Alice"]
        nodes["Alice"] = await Node(alice, dataclasses.replace(fast, listen=Address("127.0.0.1", 0))).start()
        where = nodes["Alice"].listening
        assert where is not None
        for name in ("Bob", "Carol"):
            node = nodes[name] = await Node(idents[name], dataclasses.replace(fast, peers=(where,))).start()
            node.add_friend(alice.url)
            say(name.lower(), f"friends add {alice.url[:24]}… (profile.json rewritten)")

        # Alice hosts.
        events: list[LobbyEvent] = []

        def note(e: LobbyEvent) -> None:
            events.append(e)
            say("alice", f"lobby: {e.kind} {e.guest[:8]} {e.detail}".rstrip())

        anode = nodes["Alice"]
        lobby = host_lobby(kind, alice.store, anode.replication, _member(alice), max_peers=2, on_event=note)
        rtc = RtcHost(2, ice=LOOPBACK)
        session = HostSession(lobby, rtc, on_peers=lambda n: _set_peers(anode, n))
        await session.start()
        anode.host("Demo room", lobby.url, 2)
        say("alice", f"hosting 'Demo room' ({kind} lobby {lobby.url[:24]}…): session.json written")
        await asyncio.sleep(0)
        say("alice", _host_files(lobby) or "(lobby not written yet)")

        # Bob and Carol see it and join.
        lobbies: dict[str, GuestLobby] = {}
        for name in ("Bob", "Carol"):
            node = nodes[name]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while not node.sessions() and loop.time() < deadline:
                await asyncio.sleep(0.1)
            views = node.sessions()
            if not views:
                raise HyperlobbyError("the session did not show up in time")
            view = views[0]
            say(
                name.lower(),
                f"sees '{view.session.name}' by {view.host_name} "
                f"({view.session.peers}/{view.session.max_peers})",
            )
            key = view.session.lobby_key
            found = await detect_kind(idents[name].store, node.replication, key)
            gl = lobbies[name] = guest_lobby(
                found, idents[name].store, node.replication, key, _member(idents[name])
            )
            guest = guests[name] = RtcGuest(idents[name].key.hex(), ice=LOOPBACK)
            await join(gl, guest)
            say(name.lower(), f"joined over the {found} lobby; {_guest_files(gl)}")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while any(e.kind == "connected" and e.guest == idents[name].key.hex() for e in events) is False:
                if loop.time() > deadline:
                    break
                await asyncio.sleep(0.02)
            say(
                "alice",
                _host_files(lobby)
                + f"; session.json peers={anode.heartbeat.session.peers if anode.heartbeat.session else '?'}",
            )

        # Messages both ways over the data channel (relayed by the host).
        guests["Bob"].send("hi Carol, Bob here")
        m = await _next(guests["Carol"], Message)
        if isinstance(m, Message):
            say("carol", f"got {_text(m.body)!r} from {m.sender[:8]}")
        guests["Carol"].send("hello Bob!")
        m = await _next(guests["Bob"], Message)
        if isinstance(m, Message):
            say("bob", f"got {_text(m.body)!r} from {m.sender[:8]}")

        # Carol leaves, Bob sees it, the host's place frees.
        await guests["Carol"].leave()
        say("carol", "left")
        left = await _next(guests["Bob"], Left)
        if isinstance(left, Left):
            say("bob", f"{left.peer[:8]} left the room")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while rtc.peers != 1 and loop.time() < deadline:
            await asyncio.sleep(0.02)
        say("alice", _host_files(lobby) + f"; peers={rtc.peers}")

        # The host ends the session.
        await session.close()
        session = None
        anode.heartbeat.stop()
        say("alice", "session ended: session.json removed; " + _host_files(lobby))
        closed = await _next(guests["Bob"], Closed)
        say("bob", f"room closed ({getattr(closed, 'reason', '?')})")
    finally:
        for guest in guests.values():
            with contextlib.suppress(Exception):
                await guest.leave()
        if session is not None:
            await session.close()
        for node in nodes.values():
            with contextlib.suppress(Exception):
                await node.close()
        for ident in idents.values():
            ident.close()


__all__ = ["lobby_demo"]
