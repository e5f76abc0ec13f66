"""profile.json: who a user is (the seed's "Social peer dat archive").

``{"name": "Sam", "created": 1509818932375, "friends": ["dat://...", ...]}``. ``friends`` is
optional in the seed; we always write it. Friend URLs are read in any form
:func:`~hyperlobby.encoding.urls.parse_url` accepts and written as ``hyper://<z32>``; repeats of
the same key are dropped (first one wins) so a friend is followed once. Fields we do not know are
kept in ``extra`` and written back, so another client's additions survive our edits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hyperlobby.errors import ProfileError
from hyperlobby.social.records import (
    archive_key,
    canonical_url,
    check_extra,
    check_int,
    check_name,
    dump,
    load_object,
)

PROFILE_PATH = "/profile.json"
MAX_PROFILE_BYTES = 256 * 1024
"""Read cap: enough for ~4,000 friend URLs, small enough that a hostile friend costs little."""
MAX_FRIENDS = 2000
KNOWN_FIELDS = frozenset({"name", "created", "friends"})


@dataclass(frozen=True, slots=True)
class Profile:
    """A validated profile. ``friends`` holds canonical ``hyper://<z32>`` URLs."""

    name: str
    created: int
    friends: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    _keys: tuple[bytes, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        check_name(self.name)
        check_int(self.created, "created")
        if isinstance(self.friends, str) or not isinstance(self.friends, Iterable):
            raise ProfileError("friends must be a list of archive URLs")
        urls, keys = _canonical_friends(self.friends)
        object.__setattr__(self, "friends", urls)
        object.__setattr__(self, "_keys", keys)  # parsed once: a profile may list 2,000 friends
        object.__setattr__(self, "extra", check_extra(self.extra, KNOWN_FIELDS, "profile"))

    # --- friends -----------------------------------------------------------------------------

    @property
    def friend_keys(self) -> tuple[bytes, ...]:
        return self._keys

    def with_friend(self, url: str) -> Profile:
        """This profile with ``url`` added (unchanged if that archive is already a friend)."""
        key = archive_key(url, "friend")
        if key in self.friend_keys:
            return self
        return dataclasses.replace(self, friends=(*self.friends, canonical_url(key)))

    def without_friend(self, url: str) -> Profile:
        key = archive_key(url, "friend")
        kept = tuple(u for u, k in zip(self.friends, self.friend_keys, strict=True) if k != key)
        return dataclasses.replace(self, friends=kept)

    def with_name(self, name: str) -> Profile:
        return dataclasses.replace(self, name=name)

    # --- JSON ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "created": self.created, "friends": list(self.friends), **self.extra}

    def to_json(self) -> bytes:
        """Pretty JSON (written rarely, read by people as often as by programs)."""
        return dump(self.to_dict(), indent=2) + b"\n"

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Profile:
        if "name" not in obj:
            raise ProfileError("profile has no name", field="name")
        if "created" not in obj:
            raise ProfileError("profile has no created time", field="created")
        friends = obj.get("friends", [])
        if not isinstance(friends, list):
            raise ProfileError("friends must be a list", field="friends", type=type(friends).__name__)
        extra = {k: v for k, v in obj.items() if k not in KNOWN_FIELDS}
        return cls(obj["name"], obj["created"], tuple(friends), extra)

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview | str) -> Profile:
        """Parse and validate profile.json bytes; raises :class:`ProfileError`."""
        return cls.from_dict(load_object(data, what="profile.json", max_bytes=MAX_PROFILE_BYTES))


def _canonical_friends(friends: Iterable[object]) -> tuple[tuple[str, ...], tuple[bytes, ...]]:
    """Canonical URLs and their keys, first spelling of each key kept."""
    seen: dict[bytes, str] = {}
    for i, url in enumerate(friends):
        if isinstance(url, str) and url.startswith("hyper://") and url in _CANONICAL_CACHE:
            key = _CANONICAL_CACHE[url]
        else:
            key = archive_key(url, f"friends[{i}]")
        if key in seen:
            continue
        seen[key] = canonical_url(key)
        if len(seen) > MAX_FRIENDS:
            raise ProfileError(f"more than {MAX_FRIENDS} friends", field="friends")
    for key, url in seen.items():
        if len(_CANONICAL_CACHE) < 65536:
            _CANONICAL_CACHE[url] = key
    return tuple(seen.values()), tuple(seen)


_CANONICAL_CACHE: dict[str, bytes] = {}
"""Canonical URL -> key for URLs already parsed: profiles are rewritten whole on every change,
so the same friend lists are validated again and again."""


__all__ = ["MAX_FRIENDS", "MAX_PROFILE_BYTES", "PROFILE_PATH", "Profile"]
