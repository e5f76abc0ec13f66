"""In-process nodes: hostile friend archives, friends of friends, identity and heartbeat rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hyperlobby.drive import Hyperdrive
from hyperlobby.errors import ProfileError, SocialError
from hyperlobby.social import Profile, Session
from hyperlobby.social.discovery import Address, parse_address
from hyperlobby.social.identity import Heartbeat, Identity
from hyperlobby.social.node import Node, NodeOptions, local_directory
from hyperlobby.social.records import canonical_url
from social_helpers import make_identity, until

LOOP = Address("127.0.0.1", 0)
FAST = {"interval_ms": 400, "grace_ms": 400, "poll_s": 0.3, "read_timeout": 3.0, "control_socket": False}
LOBBY = canonical_url(b"\x07" * 32)


class Clock:
    def __init__(self, now: int = 1_800_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


async def test_hostile_friend_archives_are_reported_and_skipped(tmp_path: Path) -> None:
    """Five bad friends and a good one, all served by one node: nothing crashes, problems named."""
    make_identity(tmp_path / "srv", "Server")
    make_identity(tmp_path / "a", "Alice")
    srv = Identity.open(tmp_path / "srv")
    bad_files: dict[str, dict[str, bytes]] = {
        "notjson": {"profile.json": b"{this is not json"},
        "types": {"profile.json": b'{"name": 42, "created": "yesterday", "friends": {}}'},
        "huge": {"profile.json": b'{"name":"x","created":1,"pad":"' + b"a" * (10 * 1024 * 1024) + b'"}'},
        "overfull": {
            "profile.json": Profile("Over", 1).to_json(),
            "session.json": json.dumps(
                {"name": "s", "url": LOBBY, "last_update": 1, "peers": 9, "max_peers": 8, "protected": False}
            ).encode(),
        },
        "future": {
            "profile.json": Profile("Future", 1).to_json(),
            "session.json": json.dumps(
                {
                    "name": "s",
                    "url": LOBBY,
                    "last_update": 2**52,
                    "peers": 1,
                    "max_peers": 8,
                    "protected": False,
                }
            ).encode(),
        },
        "good": {"profile.json": Profile("Good", 1).to_json()},
    }
    keys: dict[str, bytes] = {}
    for tag, files in bad_files.items():
        drive = Hyperdrive(srv.store.namespace("bad/" + tag))
        for name, data in files.items():
            drive.put(name, data)
        keys[tag] = drive.key
    srv_node = Node(srv, NodeOptions(listen=LOOP, **FAST))  # type: ignore[arg-type]
    await srv_node.start()
    a = Identity.open(tmp_path / "a")
    profile = a.profile()
    for k in keys.values():
        profile = profile.with_friend(canonical_url(k))
    a.save_profile(profile)
    assert srv_node.listening is not None
    a_node = Node(a, NodeOptions(peers=(srv_node.listening,), **FAST))  # type: ignore[arg-type]
    try:
        await a_node.start()

        async def statuses() -> dict[str, str]:
            by_key = {f.key: f.status for f in a_node.friends()}
            return {tag: by_key[k] for tag, k in keys.items()}

        want = {"notjson": "malformed", "types": "malformed", "huge": "malformed", "good": "offline"}
        await until(
            statuses,
            lambda s: all(s[t] == w for t, w in want.items()) and s["overfull"] != "pending",
            "statuses",
        )
        # a friend served by someone else's node is not "online": only its own node proves that
        problems = {(p.key, p.file) for p in a_node.problems}
        for tag in ("notjson", "types", "huge"):
            assert (keys[tag], "profile.json") in problems
        await until(
            lambda: _async(lambda: {(p.key, p.file) for p in a_node.problems}),
            lambda ps: (keys["overfull"], "session.json") in ps and (keys["future"], "session.json") in ps,
            "session problems",
        )
        assert a_node.sessions(include_stale=True) == []
        huge = a_node.directory.friend(keys["huge"])
        assert huge is not None and any("too large" in p for p in huge.problems)
        # the 10 MB file was never fetched: its blobs core holds (almost) nothing locally
        drive = Hyperdrive(a.store, keys["huge"])
        assert drive.blobs is not None
        held = sum(1 for i in range(drive.blobs.core.length) if drive.blobs.core.has(i))
        assert held <= 1
    finally:
        await a_node.close()
        await srv_node.close()
        a.close()
        srv.close()


async def _async(fn):  # type: ignore[no-untyped-def]
    return fn()


async def test_friends_of_friends_through_a_friend(tmp_path: Path) -> None:
    """A knows only B; B follows C; C hosts. At depth 2, A sees C's session via B's node."""
    url_c = make_identity(tmp_path / "c", "Carol")
    url_b = make_identity(tmp_path / "b", "Bob", [url_c])
    make_identity(tmp_path / "a", "Alice", [url_b])
    c, b, a = (Identity.open(tmp_path / n) for n in "cba")
    c_node = Node(c, NodeOptions(listen=LOOP, **FAST))  # type: ignore[arg-type]
    await c_node.start()
    assert c_node.listening is not None
    b_node = Node(b, NodeOptions(listen=LOOP, peers=(c_node.listening,), **FAST))  # type: ignore[arg-type]
    await b_node.start()
    assert b_node.listening is not None
    a_node = Node(a, NodeOptions(peers=(b_node.listening,), depth=2, **FAST))  # type: ignore[arg-type]
    try:
        await a_node.start()
        c_node.host("Deep", LOBBY, 6)

        async def deep() -> list[tuple[str, int, bool]]:
            return [(s.session.name, s.depth, s.online) for s in a_node.sessions(depth=2)]

        assert await until(deep, lambda ss: ss == [("Deep", 2, False)], "depth-2 session") == [
            ("Deep", 2, False)
        ]
        [view] = a_node.sessions(depth=2)
        assert view.via == (b.key,) and view.host_name == "Carol"
        assert a_node.sessions(depth=1) == []
        names = {f.name: (f.depth, f.status) for f in a_node.friends(depth=2)}
        assert names == {"Bob": (1, "online"), "Carol": (2, "offline")}
    finally:
        for n in (a_node, b_node, c_node):
            await n.close()
        for i in (a, b, c):
            i.close()


async def test_own_archive_rules(tmp_path: Path) -> None:
    url = make_identity(tmp_path / "me", "Me")
    ident = Identity.open(tmp_path / "me")
    node = Node(ident, NodeOptions(**FAST))  # type: ignore[arg-type]
    try:
        await node.start()
        with pytest.raises(SocialError, match="your own"):
            node.add_friend(url)
        with pytest.raises(ProfileError):
            node.add_friend("https://example.com")
        with pytest.raises(SocialError, match="not a friend"):
            node.remove_friend(canonical_url(b"\x01" * 32))
        # unknown fields survive our rewrites
        raw = json.loads(ident.profile().to_json())
        raw["avatar"] = "cat.png"
        ident.drive.put("/profile.json", json.dumps(raw))
        node.set_name("Me Again")
        node.add_friend("dat://" + ("01" * 32))
        after = json.loads(ident.drive.get("/profile.json") or b"")
        assert after["avatar"] == "cat.png" and after["name"] == "Me Again"
        assert after["friends"] == [canonical_url(b"\x01" * 32)]
    finally:
        await node.close()
        ident.close()


def test_home_lock_and_init(tmp_path: Path) -> None:
    make_identity(tmp_path / "h", "One")
    with Identity.open(tmp_path / "h") as ident:
        with pytest.raises(SocialError, match="in use"):
            Identity.open(tmp_path / "h")
        with pytest.raises(SocialError, match="already has an identity"):
            ident.init("Two", 1)
    with Identity.open(tmp_path / "empty") as empty, pytest.raises(SocialError, match="init"):
        empty.profile()


def test_heartbeat_writes_and_growth(tmp_path: Path) -> None:
    make_identity(tmp_path / "h", "Host")
    clock = Clock()
    with Identity.open(tmp_path / "h") as ident:
        hb = Heartbeat(ident, clock, interval_ms=300_000)
        assert hb.beat() is None
        s = hb.start("Room", "dat://" + "07" * 32, 8)
        assert ident.session() == s
        before = ident.archive_bytes
        for _ in range(288):  # one day at the seed's 5-minute interval
            clock.now += 300_000
            hb.beat()
        stored = ident.session()
        assert stored is not None and stored.last_update == clock.now
        per_beat = (ident.archive_bytes - before) / 288
        assert per_beat < 400, per_beat  # one compact session.json blob + one small db node
        hb.set_peers(3)
        assert ident.session() == Session("Room", LOBBY, clock.now, 3, 8)
        with pytest.raises(ProfileError):
            hb.set_peers(9)
        assert hb.stop() is True and ident.session() is None and hb.stop() is False
        d = local_directory(ident, clock.now)
        assert d.sessions(clock.now) == []


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:9") == Address("127.0.0.1", 9)
    assert parse_address(":9") == Address("127.0.0.1", 9)
    assert parse_address("9") == Address("127.0.0.1", 9)
    for bad in ("x:y", "1.2.3.4:70000", ""):
        with pytest.raises(SocialError):
            parse_address(bad)
