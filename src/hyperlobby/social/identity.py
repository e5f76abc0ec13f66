"""A user's identity archive in a home directory, and the heartbeat that keeps a session alive.

Theory of operation
-------------------
A **home** is a directory holding one Store (``store.db``) and, while a node runs, its control
socket (``node.sock``). The user *is* the Hyperdrive named ``db`` in the store's
``hyperlobby/identity`` namespace: the same primary key always gives the same archive, and the
drive's URL is the address friends add. The store is used by one process at a time; ``lock``
(an ``flock`` on ``home/lock``) enforces that, so a CLI command never writes under a running node
(it talks to the node instead, see :mod:`hyperlobby.social.control`).

:class:`Identity` reads and writes ``profile.json`` and ``session.json`` with validation both ways:
what we write must parse back, and what we read must be valid before it is trusted. Rewrites go
through :class:`~hyperlobby.social.profile.Profile`, whose ``extra`` keeps fields other programs
added.

:class:`Heartbeat` owns the hosting state: ``start`` writes session.json, ``beat`` rewrites
``last_update``, ``set_peers`` rewrites at once (a peer count change is news), ``stop`` deletes
the file. Each write is one small blob plus one db entry (see ``bench/bench_social.py`` for what a
day of heartbeats costs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from hyperlobby.core.store import Store
from hyperlobby.drive import Hyperdrive
from hyperlobby.errors import HyperlobbyError, ProfileError, SocialError
from hyperlobby.social.profile import MAX_PROFILE_BYTES, PROFILE_PATH, Profile
from hyperlobby.social.records import canonical_url
from hyperlobby.social.session import DEFAULT_INTERVAL_MS, MAX_SESSION_BYTES, SESSION_PATH, Session

Clock = Callable[[], int]
"""Milliseconds since the epoch. Passed in everywhere so tests can move time."""

IDENTITY_NAMESPACE = "hyperlobby/identity"
STORE_FILE = "store.db"
SOCKET_FILE = "node.sock"
LOCK_FILE = "lock"


def system_clock() -> int:
    return time.time_ns() // 1_000_000


def default_home() -> Path:
    """``$HYPERLOBBY_HOME``, else ``$XDG_DATA_HOME/hyperlobby``, else ``~/.local/share/hyperlobby``."""
    env = os.environ.get("HYPERLOBBY_HOME")
    if env:
        return Path(env)
    data = os.environ.get("XDG_DATA_HOME")
    base = Path(data) if data else Path.home() / ".local" / "share"
    return base / "hyperlobby"


class HomeLock:
    """An exclusive ``flock`` on ``home/lock``: one process owns a home's store at a time."""

    def __init__(self, home: Path) -> None:
        self.path = home / LOCK_FILE
        self._file: IO[bytes] | None = None

    def acquire(self) -> None:
        f = open(self.path, "a+b")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise SocialError(
                "this home is in use by another hyperlobby process (a node starting or stopping?)",
                home=str(self.path.parent),
            ) from None
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class Identity:
    """A user's archive: open it with :meth:`open`; close it when done."""

    def __init__(self, home: Path, store: Store, lock: HomeLock | None) -> None:
        self.home = home
        self.store = store
        self._lock = lock
        self.drive = Hyperdrive(store.namespace(IDENTITY_NAMESPACE))

    @classmethod
    def open(cls, home: str | Path, *, lock: bool = True) -> Identity:
        """Open (creating the directory and store if needed) the identity kept in ``home``."""
        path = Path(home).expanduser()
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        held: HomeLock | None = None
        if lock:
            held = HomeLock(path)
            held.acquire()
        try:
            store = Store(path / STORE_FILE)
        except BaseException:
            if held is not None:
                held.release()
            raise
        return cls(path, store, held)

    def close(self) -> None:
        with contextlib.suppress(HyperlobbyError):
            self.drive.close()
        self.store.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Identity:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- identity ------------------------------------------------------------------------------

    @property
    def key(self) -> bytes:
        return self.drive.key

    @property
    def url(self) -> str:
        return canonical_url(self.key)

    @property
    def exists(self) -> bool:
        return self.drive.exists(PROFILE_PATH)

    def init(self, name: str, now_ms: int) -> Profile:
        """Create profile.json (refuses if this home already has an identity)."""
        if self.exists:
            raise SocialError("this home already has an identity", url=self.url, home=str(self.home))
        profile = Profile(name, now_ms)
        self.save_profile(profile)
        return profile

    # --- files ---------------------------------------------------------------------------------

    def _read(self, path: str, cap: int) -> bytes | None:
        entry = self.drive.entry(path)
        if entry is None or entry.value.blob is None:
            return None
        if entry.value.blob.byte_length > cap:
            raise ProfileError(f"{path} is too large", size=entry.value.blob.byte_length, limit=cap)
        return self.drive.get(path)

    def profile(self) -> Profile:
        raw = self._read(PROFILE_PATH, MAX_PROFILE_BYTES)
        if raw is None:
            raise SocialError(
                "no identity in this home yet: run `hyperlobby init --name NAME`", home=str(self.home)
            )
        return Profile.from_json(raw)

    def save_profile(self, profile: Profile) -> None:
        data = profile.to_json()
        Profile.from_json(data)  # what we publish must be what we would accept
        self.drive.put(PROFILE_PATH, data)

    def session(self) -> Session | None:
        raw = self._read(SESSION_PATH, MAX_SESSION_BYTES)
        return None if raw is None else Session.from_json(raw)

    def save_session(self, session: Session) -> None:
        data = session.to_json()
        Session.from_json(data)
        self.drive.put(SESSION_PATH, data)

    def clear_session(self) -> bool:
        """Remove session.json (True if there was one)."""
        if not self.drive.exists(SESSION_PATH):
            return False
        return self.drive.delete(SESSION_PATH)

    @property
    def archive_bytes(self) -> int:
        """Payload bytes of the archive (db + blobs cores), for growth reports."""
        blobs = self.drive.blobs
        return self.drive.core.byte_length + (0 if blobs is None else blobs.core.byte_length)


class Heartbeat:
    """The hosting half of session.json: written on start and every ``interval_ms`` after."""

    def __init__(
        self, identity: Identity, clock: Clock = system_clock, interval_ms: int = DEFAULT_INTERVAL_MS
    ):
        if interval_ms <= 0:
            raise SocialError("the heartbeat interval must be positive", interval_ms=interval_ms)
        self.identity = identity
        self.clock = clock
        self.interval_ms = interval_ms
        self.session: Session | None = None
        self.beats = 0

    @property
    def hosting(self) -> bool:
        return self.session is not None

    def start(self, name: str, url: str, max_peers: int, protected: bool = False, peers: int = 0) -> Session:
        """Begin hosting: write session.json now. The node calls :meth:`beat` every interval."""
        session = Session(name, url, self.clock(), peers, max_peers, protected)
        self._write(session)
        return session

    def update(self, **changes: object) -> Session:
        """Change fields of the hosted session (peers, max_peers, name...) and write it at once."""
        if self.session is None:
            raise SocialError("not hosting a session: start one first")
        try:
            session = dataclasses.replace(self.session, last_update=self.clock(), **changes)  # type: ignore[arg-type]
        except TypeError as err:
            raise SocialError("unknown session field", reason=str(err)) from None
        self._write(session)
        return session

    def set_peers(self, peers: int) -> Session:
        return self.update(peers=peers)

    def beat(self) -> Session | None:
        """Rewrite ``last_update`` (no-op when not hosting)."""
        if self.session is None:
            return None
        session = self.session.beat(self.clock())
        self._write(session)
        return session

    def stop(self) -> bool:
        """End the session cleanly: session.json is deleted (True if it existed)."""
        self.session = None
        return self.identity.clear_session()

    def _write(self, session: Session) -> None:
        self.identity.save_session(session)
        self.session = session
        self.beats += 1


__all__ = [
    "IDENTITY_NAMESPACE",
    "SOCKET_FILE",
    "STORE_FILE",
    "Clock",
    "Heartbeat",
    "HomeLock",
    "Identity",
    "default_home",
    "system_clock",
]
