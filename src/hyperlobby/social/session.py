"""session.json: the seed's "this user is hosting" file, and when to stop believing it.

``{"name", "url", "last_update", "peers", "max_peers", "protected"}`` exactly as the seed. The
file exists only while its owner hosts; ``last_update`` (ms since the epoch) is rewritten every
heartbeat interval (default 5 minutes). A host that crashes cannot delete the file, so readers
decide for themselves: a session is **stale** when ``now - last_update`` exceeds two intervals
plus a grace (one missed heartbeat is tolerated, plus time for replication to carry the next).

Clocks differ between machines, so a ``last_update`` slightly in the future is accepted (up to
``skew_ms``); one far in the future is a lie that would keep a dead session alive forever, and
is refused. Every clock here is passed in; nothing reads the system time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hyperlobby.errors import ProfileError
from hyperlobby.social.records import (
    archive_key,
    canonical_url,
    check_bool,
    check_extra,
    check_int,
    check_name,
    dump,
    load_object,
)

SESSION_PATH = "/session.json"
MAX_SESSION_BYTES = 16 * 1024
MAX_PEERS_LIMIT = 10_000
DEFAULT_INTERVAL_MS = 5 * 60 * 1000
DEFAULT_GRACE_MS = 60 * 1000
DEFAULT_SKEW_MS = 5 * 60 * 1000
KNOWN_FIELDS = frozenset({"name", "url", "last_update", "peers", "max_peers", "protected"})


@dataclass(frozen=True, slots=True)
class Session:
    """A validated session. ``url`` is the lobby archive, written as ``hyper://<z32>``."""

    name: str
    url: str
    last_update: int
    peers: int
    max_peers: int
    protected: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name)
        object.__setattr__(self, "url", canonical_url(archive_key(self.url, "url")))
        check_int(self.last_update, "last_update")
        check_int(self.max_peers, "max_peers", low=1, high=MAX_PEERS_LIMIT)
        check_int(self.peers, "peers", high=MAX_PEERS_LIMIT)
        if self.peers > self.max_peers:
            raise ProfileError("peers exceeds max_peers", peers=self.peers, max_peers=self.max_peers)
        check_bool(self.protected, "protected")
        object.__setattr__(self, "extra", check_extra(self.extra, KNOWN_FIELDS, "session"))

    @property
    def lobby_key(self) -> bytes:
        return archive_key(self.url, "url")

    def check_time(self, now_ms: int, skew_ms: int = DEFAULT_SKEW_MS) -> Session:
        """Refuse a heartbeat further in the future than the clock skew we tolerate."""
        if self.last_update > now_ms + skew_ms:
            raise ProfileError("last_update is in the future", last_update=self.last_update, skew_ms=skew_ms)
        return self

    def beat(self, now_ms: int) -> Session:
        return dataclasses.replace(self, last_update=now_ms)

    def with_peers(self, peers: int) -> Session:
        return dataclasses.replace(self, peers=peers)

    # --- JSON ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "last_update": self.last_update,
            "peers": self.peers,
            "max_peers": self.max_peers,
            "protected": self.protected,
            **self.extra,
        }

    def to_json(self) -> bytes:
        """Compact JSON: this file is rewritten every heartbeat, and every byte stays in the log."""
        return dump(self.to_dict(), indent=None)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Session:
        missing = sorted(KNOWN_FIELDS.difference(obj))
        if missing:
            raise ProfileError("session.json lacks required fields", fields=missing)
        extra = {k: v for k, v in obj.items() if k not in KNOWN_FIELDS}
        return cls(
            obj["name"],
            obj["url"],
            obj["last_update"],
            obj["peers"],
            obj["max_peers"],
            obj["protected"],
            extra,
        )

    @classmethod
    def from_json(
        cls,
        data: bytes | bytearray | memoryview | str,
        *,
        now_ms: int | None = None,
        skew_ms: int = DEFAULT_SKEW_MS,
    ) -> Session:
        """Parse and validate session.json bytes (and, given ``now_ms``, its heartbeat time)."""
        session = cls.from_dict(load_object(data, what="session.json", max_bytes=MAX_SESSION_BYTES))
        if now_ms is not None:
            session.check_time(now_ms, skew_ms)
        return session


@dataclass(frozen=True, slots=True)
class Freshness:
    """How old a session's heartbeat is, and whether readers should still believe it."""

    age_ms: int
    stale: bool
    stale_after_ms: int


def stale_after(interval_ms: int, grace_ms: int) -> int:
    """The age beyond which a session is stale: two heartbeat intervals plus a grace."""
    return 2 * interval_ms + grace_ms


def staleness(
    session: Session, now_ms: int, interval_ms: int = DEFAULT_INTERVAL_MS, grace_ms: int = DEFAULT_GRACE_MS
) -> Freshness:
    """Age (never negative: a small clock skew reads as "just now") and the stale verdict."""
    limit = stale_after(interval_ms, grace_ms)
    age = max(0, now_ms - session.last_update)
    return Freshness(age, age > limit, limit)


__all__ = [
    "DEFAULT_GRACE_MS",
    "DEFAULT_INTERVAL_MS",
    "DEFAULT_SKEW_MS",
    "MAX_SESSION_BYTES",
    "SESSION_PATH",
    "Freshness",
    "Session",
    "stale_after",
    "staleness",
]
