"""profile.json / session.json records, staleness and the sans-IO directory."""

from __future__ import annotations

import contextlib
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperlobby.encoding.ids import encode_id
from hyperlobby.errors import ProfileError
from hyperlobby.social import Directory, Profile, Session, staleness
from hyperlobby.social.records import canonical_url
from hyperlobby.social.session import stale_after

K = [bytes([i]) * 32 for i in range(1, 8)]
NOW = 1_700_000_000_000
MIN = 60_000


def session_bytes(**over: object) -> bytes:
    obj: dict[str, object] = {
        "name": "Foobar",
        "url": "dat://" + K[6].hex(),
        "last_update": NOW,
        "peers": 2,
        "max_peers": 8,
        "protected": False,
    }
    obj.update(over)
    return json.dumps(obj).encode()


def profile_bytes(name: str = "Sam", friends: list[str] | None = None, **over: object) -> bytes:
    obj: dict[str, object] = {"name": name, "created": 1509818932375, "friends": friends or []}
    obj.update(over)
    return json.dumps(obj).encode()


# --- profile ------------------------------------------------------------------------------------


def test_profile_seed_example_and_url_forms() -> None:
    urls = [
        "dat://" + K[0].hex(),
        "hyper://" + encode_id(K[1]),
        "hyper://" + K[2].hex() + "/",
        encode_id(K[3]),
    ]
    p = Profile.from_json(profile_bytes(friends=urls))
    assert p.name == "Sam" and p.created == 1509818932375
    assert p.friends == tuple(canonical_url(k) for k in K[:4])
    assert p.friend_keys == tuple(K[:4])
    again = Profile.from_json(p.to_json())
    assert again == p


def test_profile_keeps_unknown_fields_and_dedups_friends() -> None:
    raw = profile_bytes(friends=["dat://" + K[0].hex(), "hyper://" + encode_id(K[0])], avatar={"x": [1, 2]})
    p = Profile.from_json(raw)
    assert p.friends == (canonical_url(K[0]),)
    p2 = p.with_name("Samantha").with_friend("dat://" + K[1].hex()).without_friend(canonical_url(K[0]))
    out = json.loads(p2.to_json())
    assert out == {
        "name": "Samantha",
        "created": 1509818932375,
        "friends": [canonical_url(K[1])],
        "avatar": {"x": [1, 2]},
    }
    assert p2.with_friend(canonical_url(K[1])) is p2


def test_profile_friends_optional() -> None:
    p = Profile.from_json(b'{"name":"Sam","created":1}')
    assert p.friends == ()


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1,2]",
        b'{"name": 5, "created": 1}',
        b'{"name": "", "created": 1}',
        b'{"name": "a\\u0000b", "created": 1}',
        b'{"name": "x", "created": -1}',
        b'{"name": "x", "created": 1.5}',
        b'{"name": "x", "created": true}',
        b'{"name": "x", "created": 1e300}',
        b'{"name": "x", "created": NaN}',
        b'{"name": "x", "created": 99999999999999999999}',
        b'{"name": "x"}',
        b'{"name": "x", "created": 1, "friends": "dat://abc"}',
        b'{"name": "x", "created": 1, "friends": ["dat://abc"]}',
        b'{"name": "x", "created": 1, "friends": [5]}',
        b'{"name": "x", "created": 1, "friends": ["http://' + K[0].hex().encode() + b'"]}',
        b'{"name": "x", "created": 1, "name": "y"}',
        b"\xff\xfe{}",
        b"[" * 100_000,
        b'{"name": "' + b"x" * 101 + b'", "created": 1}',
        b" " * (300 * 1024) + b"{}",
    ],
)
def test_profile_malformed(raw: bytes) -> None:
    with pytest.raises(ProfileError):
        Profile.from_json(raw)


def test_profile_ten_megabytes_refused_before_parsing() -> None:
    raw = b'{"name": "x", "created": 1, "pad": "' + b"a" * (10 * 1024 * 1024) + b'"}'
    with pytest.raises(ProfileError, match="too large"):
        Profile.from_json(raw)


def test_profile_validates_on_construction() -> None:
    with pytest.raises(ProfileError):
        Profile("x", 1, ("nope",))
    with pytest.raises(ProfileError):
        Profile("x", 1, (), {"name": "shadow"})
    with pytest.raises(ProfileError):
        Profile("x", 1, (), {"bad": object()})


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs")), min_size=1, max_size=100
).filter(lambda s: s.strip() != "")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=150)
@given(
    name=names,
    created=st.integers(0, 2**53 - 1),
    friends=st.lists(st.binary(min_size=32, max_size=32), max_size=10),
    extra=st.dictionaries(
        st.text(max_size=10).filter(lambda k: k not in ("name", "created", "friends")),
        json_values,
        max_size=4,
    ),
    dat=st.booleans(),
)
def test_profile_roundtrip_property(
    name: str, created: int, friends: list[bytes], extra: dict[str, object], dat: bool
) -> None:
    urls = [("dat://" + k.hex()) if dat else ("hyper://" + encode_id(k)) for k in friends]
    p = Profile(name, created, tuple(urls), extra)
    q = Profile.from_json(p.to_json())
    assert q == p
    assert list(q.friend_keys) == list(dict.fromkeys(friends))


@settings(max_examples=200)
@given(st.binary(max_size=400))
def test_profile_never_crashes_on_garbage(raw: bytes) -> None:
    with contextlib.suppress(ProfileError):
        Profile.from_json(raw)


@settings(max_examples=200)
@given(json_values)
def test_profile_and_session_never_crash_on_any_json(value: object) -> None:
    raw = json.dumps(value).encode()
    for parse in (Profile.from_json, Session.from_json):
        with contextlib.suppress(ProfileError):
            parse(raw)


# --- session ----------------------------------------------------------------------------------


def test_session_seed_example() -> None:
    s = Session.from_json(session_bytes(extra_field=[1]), now_ms=NOW)
    assert (s.name, s.peers, s.max_peers, s.protected, s.last_update) == ("Foobar", 2, 8, False, NOW)
    assert s.url == canonical_url(K[6]) and s.lobby_key == K[6]
    out = json.loads(s.to_json())
    assert list(out)[:6] == ["name", "url", "last_update", "peers", "max_peers", "protected"]
    assert out["extra_field"] == [1]
    assert Session.from_json(s.to_json()) == s
    assert b" " not in s.to_json()


@pytest.mark.parametrize(
    "over",
    [
        {"peers": 9},
        {"peers": -1},
        {"max_peers": 0},
        {"max_peers": 10**9},
        {"protected": "no"},
        {"protected": 0},
        {"url": "dat://nope"},
        {"url": "hyper://" + encode_id(K[0]) + "/sub"},
        {"url": "hyper://" + encode_id(K[0]) + "+3"},
        {"last_update": "yesterday"},
        {"last_update": NOW + 3_600_000},
        {"name": None},
    ],
)
def test_session_malformed(over: dict[str, object]) -> None:
    with pytest.raises(ProfileError):
        Session.from_json(session_bytes(**over), now_ms=NOW)


def test_session_missing_field_and_skew() -> None:
    raw = json.loads(session_bytes())
    del raw["protected"]
    with pytest.raises(ProfileError, match="lacks"):
        Session.from_json(json.dumps(raw))
    # a little clock skew is fine
    Session.from_json(session_bytes(last_update=NOW + 30_000), now_ms=NOW)


@settings(max_examples=200)
@given(
    last=st.integers(0, 2**50),
    now=st.integers(0, 2**50),
    interval=st.integers(1, 10**7),
    grace=st.integers(0, 10**7),
)
def test_staleness_property(last: int, now: int, interval: int, grace: int) -> None:
    s = Session("x", canonical_url(K[0]), last, 0, 1)
    f = staleness(s, now, interval, grace)
    assert f.age_ms >= 0
    assert f.stale == (now - last > 2 * interval + grace)
    assert f.stale_after_ms == stale_after(interval, grace)


# --- directory --------------------------------------------------------------------------------


def test_directory_lifecycle() -> None:
    d = Directory([K[0], K[1]], own_key=K[5], interval_ms=MIN, grace_ms=MIN)
    assert [f.status for f in d.friends()] == ["pending", "pending"]
    assert (
        d.update(K[0], profile=profile_bytes("Carol"), session=session_bytes(), now_ms=NOW, online=True) == []
    )
    [live] = d.sessions(NOW + 1000)
    assert live.host == K[0] and live.host_name == "Carol" and live.state == "live" and live.age_ms == 1000
    # peer count change
    d.update(K[0], profile=profile_bytes("Carol"), session=session_bytes(peers=3), now_ms=NOW)
    assert d.sessions(NOW)[0].session.peers == 3
    # host dies: stale after 2 intervals + grace
    d.set_online(K[0], False, NOW)
    assert d.sessions(NOW + 3 * MIN)[0].state == "live"
    assert d.sessions(NOW + 3 * MIN + 1) == []
    [stale] = d.sessions(NOW + 3 * MIN + 1, include_stale=True)
    assert stale.state == "stale" and not stale.online
    assert d.friend(K[0]) is not None and d.friend(K[0]).status == "offline"  # type: ignore[union-attr]
    assert d.friend(K[0]).profile.name == "Carol"  # type: ignore[union-attr]
    # clean stop: the file is gone
    d.update(K[0], profile=profile_bytes("Carol"), session=None, now_ms=NOW)
    assert d.sessions(NOW, include_stale=True) == []


def test_directory_bad_friend_data_reported_once_and_skipped() -> None:
    d = Directory([K[0], K[1], K[2], K[3]])
    d.update(K[1], profile=profile_bytes("Bob"), session=session_bytes(), now_ms=NOW)
    problems = d.update(K[0], profile=b"{not json", session=session_bytes(peers=20), now_ms=NOW)
    assert {p.file for p in problems} == {"profile.json", "session.json"}
    assert d.update(K[0], profile=b"{not json", session=session_bytes(peers=20), now_ms=NOW) == []
    d.update(K[2], profile=b"x" * (10 * 1024 * 1024), session=session_bytes(last_update=NOW * 2), now_ms=NOW)
    d.update(K[3], profile=TimeoutError("no peer"), session=TimeoutError("no peer"), now_ms=NOW)
    statuses = {f.key: f.status for f in d.friends()}
    assert statuses == {K[0]: "malformed", K[1]: "offline", K[2]: "malformed", K[3]: "pending"}
    assert [s.host for s in d.sessions(NOW)] == [K[1]]
    assert any("too large" in p for p in d.friend(K[2]).problems)  # type: ignore[union-attr]


def test_directory_malformed_keeps_last_good_profile() -> None:
    d = Directory([K[0]])
    d.update(K[0], profile=profile_bytes("Carol"), session=None, now_ms=NOW)
    d.update(K[0], profile=b'{"name": 7}', session=None, now_ms=NOW)
    f = d.friend(K[0])
    assert f is not None and f.status == "malformed" and f.name == "Carol"
    d.update(K[0], profile=profile_bytes("Carol2"), session=None, now_ms=NOW)
    assert d.friend(K[0]).status == "offline"  # type: ignore[union-attr]


def test_directory_friends_of_friends() -> None:
    me = K[6]
    d = Directory([K[0], K[1]], own_key=me)
    d.update(
        K[0],
        profile=profile_bytes("A", [canonical_url(K[2]), canonical_url(me), canonical_url(K[1])]),
        session=None,
        now_ms=NOW,
    )
    d.update(
        K[1], profile=profile_bytes("B", [canonical_url(K[2]), canonical_url(K[3])]), session=None, now_ms=NOW
    )
    assert d.wanted(1) == [K[0], K[1]]
    assert d.wanted(2) == [K[0], K[1], K[2], K[3]]
    d.update(K[2], profile=profile_bytes("C"), session=session_bytes(), now_ms=NOW)
    d.update(K[3], profile=profile_bytes("D"), session=None, now_ms=NOW)
    assert d.sessions(NOW) == []
    [s] = d.sessions(NOW, depth=2)
    assert s.host == K[2] and s.depth == 2 and set(s.via) == {K[0], K[1]}
    fr = d.friends(depth=2)
    assert [f.depth for f in fr] == [1, 1, 2, 2]
    d.set_friends([K[0]])
    assert d.prune(2) == [K[3]]  # K[1] is still a friend of K[0]
    assert d.wanted(2) == [K[0], K[2], K[1]]


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.integers(0, 4),
            st.sampled_from(["good", "bad", "none", "err", "huge", "future"]),
            st.integers(0, 10 * MIN),
        ),
        max_size=30,
    )
)
def test_directory_random_updates_never_crash(events: list[tuple[int, str, int]]) -> None:
    d = Directory(K[:5], interval_ms=MIN, grace_ms=MIN)
    last_good: dict[bytes, int] = {}
    for i, kind, dt in events:
        now = NOW + dt
        sess: bytes | BaseException | None
        if kind == "good":
            sess = session_bytes(last_update=now)
            last_good[K[i]] = now
        elif kind == "bad":
            sess = b"\x00garbage"
        elif kind == "none":
            sess = None
        elif kind == "err":
            sess = OSError("boom")
        elif kind == "huge":
            sess = os.urandom(64) * 1000
        else:
            sess = session_bytes(last_update=now + 10 * 3_600_000)
        d.update(K[i], profile=profile_bytes(f"u{i}"), session=sess, now_ms=now)
        if kind in ("bad", "none", "huge", "future"):
            last_good.pop(K[i], None)
        for v in d.sessions(NOW + 10 * MIN, include_stale=True):
            assert v.session.peers <= v.session.max_peers
            assert v.age_ms >= 0
