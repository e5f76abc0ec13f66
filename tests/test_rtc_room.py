"""The sans-IO halves of rtc: the room frame codec, the host's relay state and the signal codec."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperlobby.errors import DecodeError, EncodeError
from hyperlobby.rtc.room import (
    MAX_FRAME_BYTES,
    Frame,
    Joined,
    Left,
    Message,
    Peers,
    Ping,
    Pong,
    Room,
    decode,
    encode,
)
from hyperlobby.rtc.signal import (
    Answer,
    HostHello,
    Offer,
    Refusal,
    decode_signal,
    encode_signal,
)

# Valid peer ids only (what check_peer_id accepts): printable, no surrounding spaces. "Cf"
# (format characters such as a soft hyphen) are not printable for str.isprintable().
ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp", "Zs", "Co", "Cn")),
    min_size=1,
    max_size=40,
).filter(lambda s: s.isprintable() and s == s.strip())
bodies = st.text(max_size=300) | st.binary(max_size=300)
seqs = st.integers(min_value=0, max_value=2**53 - 1)
frames: st.SearchStrategy[Frame] = st.one_of(
    st.builds(Message, st.just("") | ids, bodies, st.none() | ids),
    st.builds(Joined, ids),
    st.builds(Left, st.just("") | ids, st.text(min_size=1, max_size=50)),
    st.builds(Peers, ids, st.lists(ids, max_size=5).map(tuple)),
    st.builds(Ping, seqs),
    st.builds(Pong, seqs),
)


@given(frames)
def test_frames_round_trip(frame: Frame) -> None:
    text = encode(frame)
    assert decode(text) == frame
    assert decode(text.encode()) == frame  # a binary data channel message decodes the same


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_decode_rejects_garbage_with_decode_error_only(data: bytes | str) -> None:
    with contextlib.suppress(DecodeError):
        decode(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(
    st.sampled_from(["msg", "direct", "join", "leave", "peers", "ping", "pong", "nope"]),
    st.dictionaries(st.sampled_from(["from", "to", "body", "enc", "peers", "seq", "reason"]), json_values),
)
def test_decode_of_hostile_json_objects_never_crashes(kind: str, fields: dict[str, object]) -> None:
    try:
        frame = decode(json.dumps({"type": kind, **fields}))
    except DecodeError:
        return
    assert decode(encode(frame)) == frame


def test_size_cap_both_ways() -> None:
    with pytest.raises(EncodeError):
        encode(Message("a", "x" * MAX_FRAME_BYTES))
    with pytest.raises(EncodeError):
        encode(Message("a", b"x" * (MAX_FRAME_BYTES * 3 // 4)))
    big = json.dumps({"type": "msg", "body": "x" * MAX_FRAME_BYTES})
    with pytest.raises(DecodeError, match="too large"):
        decode(big)


@pytest.mark.parametrize(
    "raw",
    [
        "[]",
        '{"type":"msg"}',
        '{"type":"msg","body":1}',
        '{"type":"msg","body":"!!","enc":"base64"}',
        '{"type":"msg","body":"aGk=","enc":"rot13"}',
        '{"type":"direct","body":"hi"}',
        '{"type":"direct","to":"","body":"hi"}',
        '{"type":"direct","to":"a\\nb","body":"hi"}',
        '{"type":"ping","seq":true}',
        '{"type":"ping","seq":-1}',
        '{"type":"peers","to":"a","peers":"b"}',
        '{"type":"leave","reason":"' + "x" * 300 + '"}',
        "[" * 100000,
        b"\xff\xfe",
    ],
)
def test_malformed_frames(raw: str | bytes) -> None:
    with pytest.raises(DecodeError):
        decode(raw)


def test_binary_body_is_base64() -> None:
    wire = json.loads(encode(Message("a", b"\x00\xff")))
    assert wire == {"type": "msg", "from": "a", "body": "AP8=", "enc": "base64"}


def _frames(sends: list, to: str) -> list[Frame]:  # type: ignore[type-arg]
    return [decode(s.data) for s in sends if s.to == to]


def test_room_join_welcomes_and_announces() -> None:
    room = Room()
    assert _frames(room.join("a", 0), "a") == [Peers("a", ())]
    sends = room.join("b", 0)
    assert _frames(sends, "b") == [Peers("b", ("a",))]
    assert _frames(sends, "a") == [Joined("b")]
    assert room.join("b", 0) == []  # joining twice changes nothing
    assert room.members == ("a", "b")


def test_room_relays_broadcast_and_direct_and_stamps_the_sender() -> None:
    room = Room()
    for p in "abc":
        room.join(p, 0)
    out = room.receive("a", encode(Message("c", "hello")), 1)  # "from": "c" is a lie
    assert out.dropped is None
    assert sorted(s.to for s in out.sends) == ["b", "c"]
    assert all(decode(s.data) == Message("a", "hello") for s in out.sends)
    out = room.receive("b", encode(Message("", b"\x01", "c")), 1)
    assert [(s.to, decode(s.data)) for s in out.sends] == [("c", Message("b", b"\x01", "c"))]


def test_room_drops_what_a_guest_may_not_send() -> None:
    room = Room()
    room.join("a", 0)
    room.join("b", 0)
    for raw in [
        encode(Joined("x")),
        encode(Peers("a", ())),
        encode(Ping(1)),
        encode(Message("", "hi", "nobody")),
        "not json",
        "x" * (MAX_FRAME_BYTES + 1),
    ]:
        out = room.receive("a", raw, 1)
        assert out.dropped and out.sends == []
    assert room.receive("zz", encode(Message("", "hi")), 1).dropped == "sender is not in the room"
    assert sum(room.dropped.values()) == 7
    assert room.members == ("a", "b")


def test_room_leave_and_goodbye() -> None:
    room = Room()
    room.join("a", 0)
    room.join("b", 0)
    out = room.receive("a", encode(Left("", "bye")), 1)
    assert out.leaving and out.dropped is None
    sends = room.leave("a", "left")
    assert _frames(sends, "b") == [Left("a", "left")]
    assert room.leave("a", "again") == []


def test_room_liveness() -> None:
    room = Room(ping_timeout=10)
    room.join("a", 0)
    room.join("b", 0)
    sends, expired = room.tick(5)
    assert expired == [] and sorted(s.to for s in sends) == ["a", "b"]
    room.receive("a", encode(Pong(1)), 8)
    sends, expired = room.tick(12)
    assert expired == ["b"] and [s.to for s in sends] == ["a"]


def test_signals_round_trip_and_reject_garbage() -> None:
    for signal in [
        HostHello("hyperlobby-room/1", 8, 65536),
        Offer("v=0\r\n"),
        Answer("v=0\r\n"),
        Refusal("full", "the session is full"),
    ]:
        assert decode_signal(encode_signal(signal)) == signal
    for raw in [b"", b"{}", b"[1]", b'{"type":"offer","sdp":"x"}', b'{"type":"host"}', b"\xff" * 10]:
        with pytest.raises(DecodeError):
            decode_signal(raw)
    with pytest.raises(DecodeError, match="too large"):
        decode_signal(b" " * (65 * 1024))


@given(st.binary(max_size=300))
def test_decode_signal_never_crashes(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_signal(data)
