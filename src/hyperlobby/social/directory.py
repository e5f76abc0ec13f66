"""The session directory: what we know about our friends, kept without any I/O.

Theory of operation
-------------------
A node follows each friend's archive and, whenever it changes (or a connection comes or goes),
reads ``profile.json`` and ``session.json`` and hands the result to :meth:`Directory.update`:
for each file the raw bytes, ``None`` when the file does not exist, or an exception when it could
not be read. The directory validates, remembers, and answers questions with a clock passed in:

* :meth:`Directory.friends`: one :class:`FriendView` per followed archive with a status:
  ``online`` (a peer is serving the archive now), ``offline`` (nobody is; the last profile we
  stored is shown), ``pending`` (nothing received yet) or ``malformed`` (the latest profile.json
  failed validation; the last good one, if any, is still shown).
* :meth:`Directory.sessions`: live sessions, newest heartbeat first; a session whose heartbeat is
  older than two intervals plus a grace is stale and hidden unless asked for (then marked).
* depth 2: friends' profiles name *their* friends; :meth:`Directory.wanted` returns the archives to
  follow for a given depth, and sessions at depth 2 say through which friends they were found.

Parsing happens in :meth:`update`, once per change, so listing a thousand sessions is only a
sort. Problems (malformed files, unreadable archives) are kept per friend and returned by
:meth:`update`, so the caller can report each once; nothing here raises for a friend's data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from hyperlobby.errors import HyperlobbyError, ProfileError
from hyperlobby.social.profile import Profile
from hyperlobby.social.records import archive_key, canonical_url
from hyperlobby.social.session import (
    DEFAULT_GRACE_MS,
    DEFAULT_INTERVAL_MS,
    DEFAULT_SKEW_MS,
    Session,
    staleness,
)

FriendStatus = Literal["online", "offline", "pending", "malformed"]
SessionState = Literal["live", "stale"]
FileRead = bytes | None | BaseException
"""What a node read for one file: its bytes, ``None`` (no such file), or why it could not read it."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with a friend's archive, worth telling the user once."""

    key: bytes
    file: str
    message: str

    @property
    def url(self) -> str:
        return canonical_url(self.key)


@dataclass(frozen=True, slots=True)
class FriendView:
    key: bytes
    status: FriendStatus
    depth: int
    profile: Profile | None
    session: Session | None
    last_seen_ms: int | None
    problems: tuple[str, ...] = ()
    via: tuple[bytes, ...] = ()

    @property
    def url(self) -> str:
        return canonical_url(self.key)

    @property
    def name(self) -> str | None:
        return None if self.profile is None else self.profile.name


@dataclass(frozen=True, slots=True)
class SessionView:
    """One friend's session as the directory sees it at a given time."""

    host: bytes
    host_name: str | None
    session: Session
    state: SessionState
    age_ms: int
    depth: int
    online: bool
    via: tuple[bytes, ...] = ()

    @property
    def host_url(self) -> str:
        return canonical_url(self.host)


@dataclass(slots=True)
class _Friend:
    key: bytes
    profile: Profile | None = None
    profile_error: str | None = None
    session: Session | None = None
    session_error: str | None = None
    online: bool = False
    last_seen_ms: int | None = None
    read_error: str | None = None
    problems: list[str] = field(default_factory=list)


class Directory:
    """Friends, friends of friends and their sessions; all times are ms since the epoch."""

    def __init__(
        self,
        friends: Iterable[bytes] = (),
        *,
        own_key: bytes | None = None,
        interval_ms: int = DEFAULT_INTERVAL_MS,
        grace_ms: int = DEFAULT_GRACE_MS,
        skew_ms: int = DEFAULT_SKEW_MS,
    ) -> None:
        self.own_key = own_key
        self.interval_ms = interval_ms
        self.grace_ms = grace_ms
        self.skew_ms = skew_ms
        self._direct: list[bytes] = []
        self._known: dict[bytes, _Friend] = {}
        self.set_friends(friends)

    # --- who we follow -------------------------------------------------------------------------

    def set_friends(self, keys: Iterable[bytes]) -> None:
        """Our own friend list (depth 1), in order; archives no longer wanted are forgotten."""
        direct: list[bytes] = []
        for k in keys:
            if k not in direct and k != self.own_key:
                direct.append(k)
        self._direct = direct
        for k in direct:
            self._known.setdefault(k, _Friend(k))

    @property
    def direct(self) -> tuple[bytes, ...]:
        return tuple(self._direct)

    def _fof(self) -> dict[bytes, list[bytes]]:
        """Friends of friends (not us, not a direct friend) -> the friends naming them."""
        direct = set(self._direct)
        out: dict[bytes, list[bytes]] = {}
        for k in self._direct:
            f = self._known.get(k)
            if f is None or f.profile is None:
                continue
            for fk in f.profile.friend_keys:
                if fk in direct or fk == self.own_key:
                    continue
                out.setdefault(fk, []).append(k)
        return out

    def wanted(self, depth: int = 1) -> list[bytes]:
        """The archives a node should follow for ``depth`` (1: friends; 2: and their friends)."""
        keys = list(self._direct)
        if depth >= 2:
            keys.extend(self._fof())
        return keys

    def prune(self, depth: int = 1) -> list[bytes]:
        """Forget archives not wanted at ``depth``; returns the forgotten keys."""
        keep = set(self.wanted(depth))
        gone = [k for k in self._known if k not in keep]
        for k in gone:
            del self._known[k]
        return gone

    # --- updates -------------------------------------------------------------------------------

    def set_online(self, key: bytes, online: bool, now_ms: int) -> None:
        f = self._known.setdefault(key, _Friend(key))
        f.online = online
        if online:
            f.last_seen_ms = now_ms

    def update(
        self,
        key: bytes,
        *,
        profile: FileRead,
        session: FileRead,
        now_ms: int,
        online: bool | None = None,
    ) -> list[Problem]:
        """Record what was read from ``key``'s archive; returns the *new* problems it showed."""
        f = self._known.setdefault(key, _Friend(key))
        if online is not None:
            self.set_online(key, online, now_ms)
        found: list[Problem] = []

        def problem(file: str, message: str) -> None:
            text = f"{file}: {message}"
            if text not in f.problems:
                f.problems.append(text)
                del f.problems[:-8]
                found.append(Problem(key, file, message))

        if isinstance(profile, ProfileError):  # judged from the entry alone (e.g. too large)
            f.profile_error = str(profile)
            problem("profile.json", f.profile_error)
        elif isinstance(profile, BaseException):
            f.read_error = _describe(profile)
            problem("profile.json", f"could not be read: {f.read_error}")
        elif profile is None:
            f.read_error = None
        else:
            f.read_error = None
            try:
                f.profile = Profile.from_json(profile)
                f.profile_error = None
            except ProfileError as err:
                f.profile_error = str(err)
                problem("profile.json", f.profile_error)

        if isinstance(session, ProfileError):
            f.session = None
            f.session_error = str(session)
            problem("session.json", f.session_error)
        elif isinstance(session, BaseException):
            problem("session.json", f"could not be read: {_describe(session)}")
        elif session is None:
            f.session = None
            f.session_error = None
        else:
            try:
                f.session = Session.from_json(session, now_ms=now_ms, skew_ms=self.skew_ms)
                f.session_error = None
            except ProfileError as err:
                f.session = None
                f.session_error = str(err)
                problem("session.json", f.session_error)
        return found

    # --- queries -------------------------------------------------------------------------------

    def _status(self, f: _Friend) -> FriendStatus:
        if f.profile_error is not None:
            return "malformed"
        if f.profile is None:
            return "pending"
        return "online" if f.online else "offline"

    def friend(self, key: bytes) -> FriendView | None:
        f = self._known.get(key)
        if f is None:
            return None
        fof = self._fof()
        depth = 1 if key in self._direct else 2
        return self._view(f, depth, tuple(fof.get(key, ())))

    def _view(self, f: _Friend, depth: int, via: tuple[bytes, ...]) -> FriendView:
        return FriendView(
            f.key, self._status(f), depth, f.profile, f.session, f.last_seen_ms, tuple(f.problems), via
        )

    def friends(self, *, depth: int = 1) -> list[FriendView]:
        """Followed archives, direct friends first (in list order), then friends of friends."""
        out = [self._view(self._known.get(k) or _Friend(k), 1, ()) for k in self._direct]
        if depth >= 2:
            for k, via in self._fof().items():
                out.append(self._view(self._known.get(k) or _Friend(k), 2, tuple(via)))
        return out

    def sessions(self, now_ms: int, *, depth: int = 1, include_stale: bool = False) -> list[SessionView]:
        """Sessions hosted by friends (and, at depth 2, their friends), freshest first.

        A session whose heartbeat is too old is stale: left out unless ``include_stale``, then
        marked ``state="stale"``. The future-time check is repeated here because ``now`` moves.
        """
        candidates: list[tuple[bytes, int, tuple[bytes, ...]]] = [(k, 1, ()) for k in self._direct]
        if depth >= 2:
            candidates.extend((k, 2, tuple(v)) for k, v in self._fof().items())
        out: list[SessionView] = []
        for k, d, via in candidates:
            f = self._known.get(k)
            if f is None or f.session is None:
                continue
            s = f.session
            if s.last_update > now_ms + self.skew_ms:
                continue
            fresh = staleness(s, now_ms, self.interval_ms, self.grace_ms)
            if fresh.stale and not include_stale:
                continue
            host_name = f.profile.name if f.profile is not None else None
            state: SessionState = "stale" if fresh.stale else "live"
            out.append(SessionView(k, host_name, s, state, fresh.age_ms, d, f.online, via))
        out.sort(key=lambda v: (v.state != "live", v.age_ms, v.host))
        return out


def _describe(err: BaseException) -> str:
    if isinstance(err, HyperlobbyError):
        return err.message
    return str(err) or type(err).__name__


def parse_friend(url: str) -> bytes:
    """The key of a friend URL a person typed; raises :class:`ProfileError` with a clear message."""
    return archive_key(url, "friend URL")


__all__ = [
    "Directory",
    "FileRead",
    "FriendStatus",
    "FriendView",
    "Problem",
    "SessionState",
    "SessionView",
    "parse_friend",
]
