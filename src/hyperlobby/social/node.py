"""The long-lived social node: keeps our archive available, follows friends, serves the CLI.

Theory of operation
-------------------
One node runs per home (it holds the home lock). It owns:

* the :class:`~hyperlobby.social.identity.Identity` (our drive) and a
  :class:`~hyperlobby.wire.replication.Replication` of the whole store. Replication offers every
  core in the store on every connection, so our archive, our friends' archives and (at depth 2)
  theirs are all served to whoever connects: a friend's archive stays readable through any
  node that follows it.
* a :class:`~hyperlobby.social.discovery.Discovery` that produces connections. The node joins
  each followed archive's discovery key; :class:`DirectDiscovery` just dials ``--peer``
  addresses, :class:`DhtDiscovery` finds the peers of each key on the HyperDHT.
* one **follower** task per followed archive: it downloads the archive's db live, and each time
  the db grows (or a periodic poll fires) it reads ``profile.json`` and ``session.json`` (sparse:
  only the blocks of those two files; a file whose entry says it is larger than the cap is never
  fetched) and feeds the sans-IO :class:`~hyperlobby.social.directory.Directory`.
* the :class:`~hyperlobby.social.identity.Heartbeat` while we host a session.
* the control socket (:mod:`hyperlobby.social.control`), through which CLI commands ask.

*Online* means a connection whose authenticated Noise key is the friend's own signing key: the
node replicates under its identity key pair, so a friend's node proves who it is by completing
the handshake. (Reusing the signing key for the Ed25519 Noise handshake is what makes this
proof free; it is the only thing the key is used for besides signing our archive.) A friend
whose archive we only get through someone else is shown with its data but as offline.

Timers are bounded and every read has a timeout; a friend's malformed or unreachable archive
becomes a :class:`~hyperlobby.social.directory.Problem`, logged once, never an exception here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hyperlobby.drive import Hyperdrive
from hyperlobby.errors import HyperlobbyError, ProfileError, SocialError
from hyperlobby.social.directory import Directory, FileRead, FriendView, Problem, SessionView
from hyperlobby.social.discovery import Address, Discovery, make_discovery
from hyperlobby.social.identity import Clock, Heartbeat, Identity, system_clock
from hyperlobby.social.profile import MAX_PROFILE_BYTES, PROFILE_PATH, Profile
from hyperlobby.social.records import archive_key, canonical_url
from hyperlobby.social.session import (
    DEFAULT_GRACE_MS,
    DEFAULT_INTERVAL_MS,
    MAX_SESSION_BYTES,
    SESSION_PATH,
    Session,
)
from hyperlobby.wire.replication import Replication

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """How a node behaves; the defaults are the seed's (5-minute heartbeat)."""

    interval_ms: int = DEFAULT_INTERVAL_MS
    grace_ms: int = DEFAULT_GRACE_MS
    depth: int = 1
    read_timeout: float = 5.0
    poll_s: float = 5.0
    listen: Address | None = None
    peers: tuple[Address, ...] = ()
    bootstrap: tuple[str, ...] | None = None  # DHT bootstrap nodes; None: no DHT (``--peer`` only)
    control_socket: bool = True
    relay_through: tuple[bytes, ...] = ()  # blind relays (public keys) for peers we cannot punch to


# --- reading a friend's files ---------------------------------------------------------------------


def read_local(drive: Hyperdrive, path: str, cap: int) -> FileRead:
    """A file of a followed archive from local blocks only (``None`` if absent or not held)."""
    try:
        entry = drive.entry(path)
        if entry is None or entry.value.blob is None:
            return None
        blob = entry.value.blob
        if blob.byte_length > cap:
            return ProfileError(f"{path[1:]} is too large", size=blob.byte_length, limit=cap)
        blobs = drive.blobs
        return None if blobs is None else blobs.get(blob)
    except HyperlobbyError as err:
        return err


async def read_remote(drive: Hyperdrive, path: str, cap: int, timeout: float) -> FileRead:
    """A file of a followed archive, fetching exactly the blocks it needs (bounded by ``timeout``)."""
    try:
        entry = await drive.entry_async(path, timeout=timeout)
        if entry is None or entry.value.blob is None:
            return None
        if entry.value.blob.byte_length > cap:
            return ProfileError(f"{path[1:]} is too large", size=entry.value.blob.byte_length, limit=cap)
        return await drive.get_async(path, timeout=timeout)
    except HyperlobbyError as err:
        return err


def signer_key(drive: Hyperdrive) -> bytes | None:
    """The public key that signs ``drive`` (what its owner's node authenticates with)."""
    core = drive.core
    if core.compat:
        return core.key
    m = core.manifest
    if m is None or len(m.signers) != 1:
        return None
    return m.signers[0].public_key


def local_directory(identity: Identity, now_ms: int, *, depth: int = 1, **kwargs: Any) -> Directory:
    """A directory built only from what the store holds (no node running: everyone is offline)."""
    profile = identity.profile()
    d = Directory(profile.friend_keys, own_key=identity.key, **kwargs)
    done: set[bytes] = set()
    for level in range(1, depth + 1):
        for key in d.wanted(level):
            if key in done:
                continue
            done.add(key)
            if key not in identity.store:
                continue
            try:
                drive = Hyperdrive(identity.store, key)
            except HyperlobbyError as err:
                d.update(key, profile=err, session=err, now_ms=now_ms)
                continue
            d.update(
                key,
                profile=read_local(drive, PROFILE_PATH, MAX_PROFILE_BYTES),
                session=read_local(drive, SESSION_PATH, MAX_SESSION_BYTES),
                now_ms=now_ms,
            )
    return d


# --- the node -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Follower:
    key: bytes
    drive: Hyperdrive | None = None
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    reads: int = 0


class Node:
    """A running social node. ``await start()``, then use it; ``await close()`` at the end."""

    def __init__(
        self,
        identity: Identity,
        options: NodeOptions | None = None,
        *,
        clock: Clock = system_clock,
        discovery: Discovery | None = None,
        on_problem: Callable[[Problem], None] | None = None,
    ) -> None:
        self.identity = identity
        self.options = options or NodeOptions()
        self.clock = clock
        self.on_problem = on_problem
        kp = identity.drive.core.key_pair
        self.replication = Replication(identity.store, key_pair=kp, on_error=self._peer_error)
        self.discovery: Discovery = discovery or make_discovery(
            self.options.peers, self.options.bootstrap, self.options.relay_through
        )
        self.directory = Directory(
            own_key=identity.key, interval_ms=self.options.interval_ms, grace_ms=self.options.grace_ms
        )
        self.heartbeat = Heartbeat(identity, clock, self.options.interval_ms)
        self.listening: Address | None = None
        self.problems: list[Problem] = []
        self._followers: dict[bytes, _Follower] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._control: Any = None
        self.changed = asyncio.Condition()
        self.version = 0

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> Node:
        """Bring the node up: clear a crashed session, listen, discover, follow friends."""
        ident = self.identity
        profile = ident.profile()
        if ident.clear_session():
            _log.info("removed a session.json left by a previous run (it was not ended cleanly)")
        self.replication.add(ident.drive.core)
        blobs = ident.drive.blobs
        if blobs is not None:
            self.replication.add(blobs.core)
        if self.options.listen is not None:
            host, port = await self.replication.listen(self.options.listen.host, self.options.listen.port)
            self.listening = Address(host, port)
        await self.discovery.start(self.replication)
        self.discovery.join(ident.drive.discovery_key)
        self._set_friends(profile)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._beat()))
        if self.options.control_socket:
            from hyperlobby.social.control import ControlServer

            self._control = ControlServer(self)
            await self._control.start()
        return self

    async def close(self, *, end_session: bool = True) -> None:
        """Stop: end a hosted session cleanly (deleting session.json), then tear down."""
        if end_session and self.heartbeat.hosting:
            with contextlib.suppress(HyperlobbyError):
                self.heartbeat.stop()
                await self._let_peers_see(1.0)
        if self._control is not None:
            await self._control.close()
        for f in list(self._followers.values()):
            await self._stop_follower(f)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.discovery.close()
        await self.replication.close()

    async def _let_peers_see(self, timeout: float) -> None:
        """Wait (bounded) until connected peers have asked for our latest db length."""
        core = self.identity.drive.core
        rep = self.replication.replicator(core)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            peers = [p for p in rep.peers if p.active]
            if all(p.remote_length >= core.length for p in peers):
                return
            await asyncio.sleep(0.02)

    async def _beat(self) -> None:
        """Heartbeat while hosting; the interval restarts after every write."""
        interval = self.options.interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            if self.heartbeat.hosting and self.clock() - self.heartbeat.session.last_update >= (  # type: ignore[union-attr]
                self.options.interval_ms * 0.9
            ):
                try:
                    self.heartbeat.beat()
                except HyperlobbyError as err:
                    _log.warning("heartbeat failed: %s", err)

    # --- friends -------------------------------------------------------------------------------

    def _set_friends(self, profile: Profile) -> None:
        self.directory.set_friends(profile.friend_keys)
        self._sync_followers()

    def _sync_followers(self) -> None:
        wanted = set(self.directory.wanted(self.options.depth))
        for key in wanted - set(self._followers):
            self._start_follower(key)
        for key in set(self._followers) - wanted:
            f = self._followers[key]
            asyncio.get_running_loop().create_task(self._stop_follower(f))
        self.directory.prune(self.options.depth)

    def _start_follower(self, key: bytes) -> None:
        f = _Follower(key)
        self._followers[key] = f
        f.task = asyncio.get_running_loop().create_task(self._follow(f))

    async def _stop_follower(self, f: _Follower) -> None:
        self._followers.pop(f.key, None)
        if f.task is not None:
            f.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await f.task
        if f.drive is not None:
            self.discovery.leave(f.drive.discovery_key)

    async def _follow(self, f: _Follower) -> None:
        try:
            drive = Hyperdrive(self.identity.store, f.key, replication=self.replication)
        except HyperlobbyError as err:
            self._record(f.key, err, err)
            return
        f.drive = drive
        self.discovery.join(drive.discovery_key)
        self.replication.download(drive.core, 0, None)
        unsubscribe = drive.core.on_append(lambda _event: f.wake.set())
        # First what we already hold (an offline friend shows their last known profile at once).
        self._record(
            f.key,
            read_local(drive, PROFILE_PATH, MAX_PROFILE_BYTES),
            read_local(drive, SESSION_PATH, MAX_SESSION_BYTES),
        )
        try:
            while True:
                f.wake.clear()
                if drive.core.length > 0:
                    timeout = self.options.read_timeout
                    profile = await read_remote(drive, PROFILE_PATH, MAX_PROFILE_BYTES, timeout)
                    session = await read_remote(drive, SESSION_PATH, MAX_SESSION_BYTES, timeout)
                    f.reads += 1
                    self._record(f.key, profile, session)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(f.wake.wait(), self.options.poll_s)
        finally:
            unsubscribe()

    def _record(self, key: bytes, profile: FileRead, session: FileRead) -> None:
        before = self.directory.wanted(self.options.depth)
        found = self.directory.update(key, profile=profile, session=session, now_ms=self.clock())
        for p in found:
            self.problems.append(p)
            del self.problems[:-100]
            _log.warning("friend %s: %s: %s", p.url, p.file, p.message)
            if self.on_problem is not None:
                self.on_problem(p)
        if self.options.depth >= 2 and self.directory.wanted(self.options.depth) != before:
            self._sync_followers()
        self.version += 1
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def _peer_error(self, err: HyperlobbyError) -> None:
        _log.info("peer connection dropped: %s", err)

    def _refresh_online(self) -> None:
        """Mark a friend online iff a connection is authenticated with their signing key."""
        remote = {
            getattr(conn, "remote_public_key", None)
            for conn in self.replication._connections  # the live connection set (no public view yet)
        }
        now = self.clock()
        for key, f in self._followers.items():
            signer = None if f.drive is None else signer_key(f.drive)
            self.directory.set_online(key, signer is not None and signer in remote, now)

    # --- what commands call --------------------------------------------------------------------

    def profile(self) -> Profile:
        return self.identity.profile()

    def set_name(self, name: str) -> Profile:
        profile = self.identity.profile().with_name(name)
        self.identity.save_profile(profile)
        return profile

    def add_friend(self, url: str) -> tuple[Profile, bytes]:
        key = archive_key(url, "friend URL")
        if key == self.identity.key:
            raise SocialError("that URL is your own archive", url=canonical_url(key))
        profile = self.identity.profile().with_friend(url)
        self.identity.save_profile(profile)
        self._set_friends(profile)
        return profile, key

    def remove_friend(self, url: str) -> Profile:
        key = archive_key(url, "friend URL")
        old = self.identity.profile()
        if key not in old.friend_keys:
            raise SocialError("not a friend", url=canonical_url(key))
        profile = old.without_friend(url)
        self.identity.save_profile(profile)
        self._set_friends(profile)
        return profile

    async def wait_friend(self, key: bytes, timeout: float) -> FriendView | None:
        """Wait (bounded) until a friend's profile has been read; None if it did not arrive."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            view = self.directory.friend(key)
            if view is not None and view.status != "pending":
                return view
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            async with self.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), min(remaining, 0.5))

    def friends(self, depth: int = 1) -> list[FriendView]:
        self._refresh_online()
        return self.directory.friends(depth=depth)

    def sessions(self, depth: int = 1, include_stale: bool = False) -> list[SessionView]:
        self._refresh_online()
        return self.directory.sessions(self.clock(), depth=depth, include_stale=include_stale)

    def host(self, name: str, url: str, max_peers: int, protected: bool = False) -> Session:
        return self.heartbeat.start(name, url, max_peers, protected)

    @property
    def connections(self) -> int:
        return self.replication.connections

    @property
    def following(self) -> int:
        """How many archives this node follows (friends, and at depth 2 their friends)."""
        return len(self._followers)


__all__ = ["Node", "NodeOptions", "local_directory", "read_local", "read_remote", "signer_key"]
