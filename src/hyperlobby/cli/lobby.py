"""Session commands: ``hyperlobby host --name NAME`` (the real host) and ``hyperlobby join URL``.

``host`` runs this home's node with a lobby and a WebRTC host: it advertises the session in
``session.json`` (peers kept current), and prints joins, leaves and messages. ``join`` runs the
guest's node, finds the lobby (a friend's archive URL: through its ``session.json``; or a lobby
URL directly), asks to be admitted, connects, and chats: lines from stdin are sent to the room,
room events are printed (``--json``: one JSON object per line, for scripts). The manual
``host start|peers|stop`` commands of :mod:`hyperlobby.cli.social` keep working.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperlobby.cli.dht import add_dht_options, bootstrap_option, relay_option
from hyperlobby.crypto.hashes import discovery_key
from hyperlobby.drive import Hyperdrive
from hyperlobby.errors import AdmissionRefused, HyperlobbyError, LobbyError, SocialError
from hyperlobby.lobby.lobby import HOST_FILE, KINDS, LobbyEvent, Member, detect_kind, guest_lobby, host_lobby
from hyperlobby.lobby.session import HostSession, join
from hyperlobby.rtc import Closed, IceConfig, Joined, Left, Message, Peers, RtcGuest, RtcHost
from hyperlobby.social.discovery import parse_address
from hyperlobby.social.identity import Identity, default_home
from hyperlobby.social.node import Node, NodeOptions, read_remote
from hyperlobby.social.records import archive_key
from hyperlobby.social.session import MAX_SESSION_BYTES, SESSION_PATH, Session

LEAVE_TIMEOUT = 5.0  # seconds for each teardown step of `host`/`join` before the process exits anyway


def extend_host(parser: argparse.ArgumentParser) -> None:
    """Give the ``host`` group its no-subcommand form: ``hyperlobby host --name NAME ...``."""
    _common(parser)
    parser.add_argument("--name", help="the session's public name (runs the host)")
    parser.add_argument("--max-peers", type=int, default=8)
    parser.add_argument("--password-file", help="file whose first line is the session password")
    parser.add_argument("--lobby", choices=KINDS, default="drive", help="lobby option (seed: 1=drive, 2=log)")
    parser.set_defaults(handler=_wrap(_host))


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("join", help="join a session: a friend's archive URL or a lobby URL")
    _common(p)
    p.add_argument("url")
    p.add_argument("--password-file", help="file whose first line is the session password")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to find, be admitted and connect")
    p.set_defaults(handler=_wrap(_join))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", help="the user's data directory (default: $HYPERLOBBY_HOME or a per-user dir)")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout")
    p.add_argument("--listen", help="HOST:PORT to accept peers on (e.g. 127.0.0.1:0)")
    p.add_argument("--peer", action="append", default=[], help="HOST:PORT of a peer to keep connected")
    add_dht_options(p)
    p.add_argument("--loopback", action="store_true", help="WebRTC on 127.0.0.1 only (tests, demos)")


def _wrap(fn: Any) -> Any:
    def handler(args: argparse.Namespace) -> int:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr)
        home = Path(args.home).expanduser() if args.home else default_home()
        try:
            return int(asyncio.run(fn(args, home)))
        except AdmissionRefused as err:
            print(f"error: refused ({err.reason}): {err.message}", file=sys.stderr)
            return 1
        except HyperlobbyError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130

    return handler


class _Out:
    def __init__(self, as_json: bool) -> None:
        self.json = as_json

    def __call__(self, event: str, text: str, **fields: Any) -> None:
        if self.json:
            print(json.dumps({"event": event, **fields}), flush=True)
        else:
            print(text, flush=True)


def _password(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SocialError("cannot read the password file", path=path, error=exc.strerror) from None
    password = text.splitlines()[0] if text else ""
    if not password:
        raise SocialError("the password file is empty", path=path)
    return password


def _options(args: argparse.Namespace) -> NodeOptions:
    return NodeOptions(
        listen=None if args.listen is None else parse_address(args.listen),
        peers=tuple(parse_address(p) for p in args.peer),
        bootstrap=bootstrap_option(args),
        relay_through=relay_option(args),
        poll_s=0.5,
        control_socket=False,
    )


def _open_identity(home: Path) -> Identity:
    if not (home / "store.db").exists():
        raise SocialError("no identity in this home yet: run `hyperlobby init --name NAME`", home=str(home))
    ident = Identity.open(home)
    if not ident.exists:
        ident.close()
        raise SocialError("no identity in this home yet: run `hyperlobby init --name NAME`", home=str(home))
    return ident


def _member(ident: Identity) -> Member:
    pair = ident.drive.core.key_pair
    assert pair is not None
    return Member(ident.key, pair)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _message_printer(out: _Out) -> Callable[[str, Message], None]:
    """Show the host the room's broadcast messages (it relays them anyway)."""

    def show(sender: str, message: Message) -> None:
        if message.to is None:
            body = message.body if isinstance(message.body, str) else bytes(message.body).hex()
            out("message", f"<{sender[:8]}> {body}", sender=sender, body=body)

    return show


async def _host(args: argparse.Namespace, home: Path) -> int:
    if not args.name:
        raise SocialError("host needs --name NAME (or one of: start, peers, stop)")
    if args.max_peers < 1:
        raise SocialError("--max-peers must be at least 1", max_peers=args.max_peers)
    password = _password(args.password_file)
    out = _Out(args.json)
    ident = _open_identity(home)
    node: Node | None = None
    session: HostSession | None = None
    try:
        node = await Node(ident, _options(args)).start()
        running = node

        def on_event(e: LobbyEvent) -> None:
            if e.kind in ("refused", "ignored"):
                out(e.kind, f"{e.kind} {e.guest[:8]}: {e.detail}", guest=e.guest, reason=e.detail)

        lobby = host_lobby(
            args.lobby,
            ident.store,
            node.replication,
            _member(ident),
            max_peers=args.max_peers,
            password=password,
            on_event=on_event,
        )
        rtc = RtcHost(
            args.max_peers, ice=IceConfig(loopback_only=args.loopback), on_message=_message_printer(out)
        )
        present: set[str] = set()

        def on_peers(count: int) -> None:
            now = set(rtc.guests)
            for g in sorted(now - present):
                out("joined", f"+ {g[:8]} joined ({count}/{args.max_peers})", guest=g, peers=count)
            for g in sorted(present - now):
                out("left", f"- {g[:8]} left ({count}/{args.max_peers})", guest=g, peers=count)
            present.clear()
            present.update(now)
            if running.heartbeat.hosting:
                running.heartbeat.set_peers(count)

        node.discovery.join(discovery_key(lobby.key))  # guests given the lobby URL find us by it
        session = HostSession(lobby, rtc, on_peers=on_peers)
        await session.start()
        node.host(args.name, lobby.url, args.max_peers, password is not None)
        where = None if node.listening is None else str(node.listening)
        out(
            "hosting",
            f"hosting '{args.name}' at {ident.url} (lobby {lobby.url}, {args.lobby})"
            + (f" on {where}" if where else ""),
            name=args.name,
            url=ident.url,
            lobby=lobby.url,
            kind=args.lobby,
            listen=where,
            pid=os.getpid(),
        )
        await _stop_event().wait()
        out("ended", "session ended")
    finally:
        # Ending must end the process even if a teardown step stalls: each one is bounded.
        if session is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.close(), LEAVE_TIMEOUT)
        if node is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(node.close(), LEAVE_TIMEOUT)
        ident.close()
    return 0


async def _find_lobby(node: Node, url: str, timeout: float) -> tuple[bytes, str, Session | None]:
    """(lobby key, kind, the session record if we came through one) for ``url``."""
    key = archive_key(url, "URL")
    node.discovery.join(discovery_key(key))  # on the DHT, find whoever holds that archive
    store, rep = node.identity.store, node.replication
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    kind = await detect_kind(store, rep, key, timeout=max(0.1, deadline - loop.time()))
    if kind == "log":
        return key, kind, None
    drive = Hyperdrive(store, key, replication=rep)
    if await drive.entry_async(HOST_FILE, timeout=max(0.1, deadline - loop.time())) is not None:
        return key, "drive", None
    raw = await read_remote(drive, SESSION_PATH, MAX_SESSION_BYTES, max(0.1, deadline - loop.time()))
    if raw is None:
        raise LobbyError("that archive hosts no session right now (no session.json)", url=url)
    if isinstance(raw, BaseException):
        raise raw
    session = Session.from_json(raw)
    lobby = session.lobby_key
    node.discovery.join(discovery_key(lobby))
    return lobby, await detect_kind(store, rep, lobby, timeout=max(0.1, deadline - loop.time())), session


async def _join(args: argparse.Namespace, home: Path) -> int:
    out = _Out(args.json)
    password = _password(args.password_file)
    ident = _open_identity(home)
    node: Node | None = None
    guest: RtcGuest | None = None
    try:
        node = await Node(ident, _options(args)).start()
        lobby_key, kind, session = await _find_lobby(node, args.url, args.timeout)
        if session is not None and session.protected and password is None:
            raise SocialError("this session is password-protected: pass --password-file")
        lobby = guest_lobby(kind, ident.store, node.replication, lobby_key, _member(ident), password=password)
        guest = RtcGuest(ident.key.hex(), ice=IceConfig(loopback_only=args.loopback))
        await join(lobby, guest, timeout=args.timeout)
        out("connected", f"connected to the room ({kind} lobby); type to talk, Ctrl-D to leave", kind=kind)
        return await _chat(guest, out)
    finally:
        # Leaving must end the process even if a teardown step stalls (an aiortc close under
        # load, a peer that stops answering): each step gets a bounded time.
        if guest is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(guest.leave(), LEAVE_TIMEOUT)
        if node is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(node.close(), LEAVE_TIMEOUT)
        ident.close()


async def _chat(guest: RtcGuest, out: _Out) -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stop = _stop_event()
    leaving: list[bool] = []

    async def typing() -> None:
        while line := await reader.readline():
            text = line.decode("utf-8", "replace").rstrip("\n")
            if text:
                guest.send(text)
        leaving.append(True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(guest.leave(), LEAVE_TIMEOUT)

    async def events() -> int:
        async for event in guest:
            if isinstance(event, Message):
                body = event.body if isinstance(event.body, str) else event.body.hex()
                out("message", f"<{event.sender[:8]}> {body}", sender=event.sender, body=body)
            elif isinstance(event, Joined):
                out("joined", f"+ {event.peer[:8]} joined", peer=event.peer)
            elif isinstance(event, Left):
                out("left", f"- {event.peer[:8]} left", peer=event.peer)
            elif isinstance(event, Peers):
                out("peers", f"in the room: {len(event.peers)} other(s)", peers=list(event.peers))
            elif isinstance(event, Closed):
                out("closed", f"room closed: {event.reason}", reason=event.reason)
                return 0 if leaving or event.reason == "left" else 2
        return 0

    tasks = [loop.create_task(typing()), loop.create_task(events()), loop.create_task(stop.wait())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[1] in done:
            return int(tasks[1].result() or 0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(guest.leave(), LEAVE_TIMEOUT)
        return 0
    finally:
        for task in tasks:
            task.cancel()


__all__ = ["extend_host", "register"]
