"""Sans-IO secret-stream core: JS transcripts, chunking, keepalive, and hostile input."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import load_vectors
from hyperlobby.errors import DecodeError, EncodeError, HandshakeError, HyperlobbyError, ProtocolError
from hyperlobby.wire.framing import MAX_FRAME, FrameDecoder, encode_frame
from hyperlobby.wire.noise import NoiseKeyPair
from hyperlobby.wire.secret_stream import (
    ABYTES,
    MAX_PLAINTEXT,
    NS_INITIATOR,
    NS_RESPONDER,
    NS_SEND,
    Closed,
    Event,
    HandshakeComplete,
    Message,
    Phase,
    SecretStream,
    stream_id,
)

VEC = load_vectors("secret_stream")


def kp(seed_hex: str) -> NoiseKeyPair:
    return NoiseKeyPair.from_seed(bytes.fromhex(seed_hex))


def payload(size: int, i: int) -> bytes:
    """Same deterministic bytes as the JS scripts (see payload_rule in the vectors)."""
    return bytes((j * 31 + i * 7) & 255 for j in range(size))


def messages(events: list[Event]) -> list[bytes]:
    return [e.data for e in events if isinstance(e, Message)]


def closed_error(events: list[Event]) -> HyperlobbyError | None:
    closes = [e for e in events if isinstance(e, Closed)]
    assert len(closes) == 1, events
    return closes[0].error


def connected_pair(**opts: Any) -> tuple[SecretStream, SecretStream]:
    """Two in-memory streams with the handshake and header exchange done."""
    a = SecretStream(True, NoiseKeyPair.generate(), **opts)
    b = SecretStream(False, NoiseKeyPair.generate(), **opts)
    b.receive_data(a.initiate())
    a.receive_data(b.data_to_send())
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    assert a.phase is Phase.OPEN and b.phase is Phase.OPEN
    return a, b


# -- against the JS transcripts ------------------------------------------------------------


def test_namespaces_match_js() -> None:
    ns = VEC["namespaces"]
    assert (NS_INITIATOR.hex(), NS_RESPONDER.hex(), NS_SEND.hex()) == (
        ns["initiator"],
        ns["responder"],
        ns["send"],
    )
    assert VEC["abytes"] == ABYTES


@pytest.mark.parametrize("name", [s["name"] for s in VEC["sessions"]])
def test_python_initiator_replays_js_session(name: str) -> None:
    check_initiator_transcript(next(s for s in VEC["sessions"] if s["name"] == name))


@pytest.mark.parametrize("name", [s["name"] for s in VEC["sessions"]])
def test_python_responder_replays_js_session(name: str) -> None:
    check_responder_transcript(next(s for s in VEC["sessions"] if s["name"] == name))


def check_initiator_transcript(s: dict[str, Any]) -> None:
    """A Python initiator with the JS keys writes the JS bytes and reads everything JS sent."""
    py = SecretStream(
        True,
        kp(s["initiator_seed"]),
        ephemeral_key_pair=kp(s["initiator_ephemeral_seed"]),
        filter_empty=s["filter_zero_byte_messages"],
    )
    assert py.initiate().hex() == s["initiator_frames"][0]
    events = py.receive_data(b"".join(bytes.fromhex(f) for f in s["responder_frames"]))
    out = py.data_to_send()
    assert out[: 3 + 64].hex() == s["initiator_frames"][1]  # msg3
    assert out[3 + 64 : 3 + 64 + 35] == bytes.fromhex(s["initiator_frames"][2])[:35]  # length + stream id
    assert isinstance(events[0], HandshakeComplete)
    assert events[0].remote_public_key.hex() == s["responder_public_key"]
    assert events[0].handshake_hash.hex() == s["handshake_hash"]
    want = [payload(n, i + 100) for i, n in enumerate(s["responder_sizes"])]
    if s["filter_zero_byte_messages"]:
        want = [m for m in want if m]
    assert messages(events) == want
    assert [len(m) for m in want] == s["sizes_received_by_initiator"]
    assert not any(isinstance(e, Closed) for e in events)


def check_responder_transcript(s: dict[str, Any]) -> None:
    py = SecretStream(
        False,
        kp(s["responder_seed"]),
        ephemeral_key_pair=kp(s["responder_ephemeral_seed"]),
        filter_empty=s["filter_zero_byte_messages"],
    )
    assert py.initiate() == b""
    frames = [bytes.fromhex(f) for f in s["initiator_frames"]]
    events = py.receive_data(frames[0])
    assert events == [] and py.data_to_send().hex() == s["responder_frames"][0]
    events = py.receive_data(b"".join(frames[1:]))
    header = py.data_to_send()
    assert header[:35] == bytes.fromhex(s["responder_frames"][1])[:35]
    assert isinstance(events[0], HandshakeComplete)
    assert events[0].remote_public_key.hex() == s["initiator_public_key"]
    want = [payload(n, i) for i, n in enumerate(s["initiator_sizes"])]
    if s["filter_zero_byte_messages"]:
        want = [m for m in want if m]
    assert messages(events) == want
    assert [len(m) for m in want] == s["sizes_received_by_responder"]


def test_spec_hello_decryption_vector() -> None:
    """secret-stream.md §9: the fixed header + "hello" frame decrypts with the initiator's tx."""
    s = next(s for s in VEC["sessions"] if s["name"] == "spec_keys")
    py = SecretStream(False, kp(s["responder_seed"]), ephemeral_key_pair=kp(s["responder_ephemeral_seed"]))
    py.receive_data(bytes.fromhex(s["initiator_frames"][0]))
    sid = bytes.fromhex(s["stream_id_initiator"])
    header = bytes.fromhex("9d8e4891819c43304b837e9585f53d1407cddb5c4e397313")
    frames = bytes.fromhex(s["initiator_frames"][1]) + encode_frame(sid + header)
    frames += bytes.fromhex("16000028870e4fec94d48b78ee214c0d547a2dc27ed443d6c9")
    assert messages(py.receive_data(frames)) == [b"hello"]


def test_stream_ids_match_js() -> None:
    for s in VEC["sessions"]:
        hh = bytes.fromhex(s["handshake_hash"])
        assert stream_id(hh, True).hex() == s["stream_id_initiator"]
        assert stream_id(hh, False).hex() == s["stream_id_responder"]


# -- Python <-> Python ---------------------------------------------------------------------


def test_roundtrip_and_frame_shape() -> None:
    a, b = connected_pair()
    frame = a.send(b"hello")
    assert len(frame) == 3 + 5 + ABYTES and frame[:3] == (5 + ABYTES).to_bytes(3, "little")
    assert messages(b.receive_data(frame)) == [b"hello"]
    assert messages(a.receive_data(b.send(b"back"))) == [b"back"]


def test_keepalive_is_an_encrypted_empty_message_and_is_filtered() -> None:
    a, b = connected_pair()
    ka = a.keepalive()
    assert ka[:3] == b"\x11\x00\x00" and len(ka) == 20
    assert b.receive_data(ka) == []
    a2, b2 = connected_pair(filter_empty=False)
    assert messages(b2.receive_data(a2.keepalive())) == [b""]


def test_data_may_follow_own_header_before_peer_header() -> None:
    a = SecretStream(True, NoiseKeyPair.generate())
    b = SecretStream(False, NoiseKeyPair.generate())
    b.receive_data(a.initiate())
    a.receive_data(b.data_to_send())
    assert a.can_send and a.phase is Phase.AWAIT_HEADER
    early = a.data_to_send() + a.send(b"early") + a.send(b"bird")
    events = b.receive_data(early)
    assert isinstance(events[0], HandshakeComplete)
    assert messages(events) == [b"early", b"bird"]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_arbitrary_chunking(data: st.DataObject) -> None:
    a = SecretStream(True, NoiseKeyPair.generate())
    b = SecretStream(False, NoiseKeyPair.generate())
    sizes = data.draw(st.lists(st.integers(0, 3000), max_size=8))
    wire_a = a.initiate()
    got_b: list[bytes] = []
    got_a: list[bytes] = []

    def pump(src: bytes, dst: SecretStream, sink: list[bytes]) -> None:
        pos = 0
        while pos < len(src):
            n = data.draw(st.integers(1, 200))
            events = dst.receive_data(src[pos : pos + n])
            assert not any(isinstance(e, Closed) for e in events)
            sink.extend(messages(events))
            pos += n

    pump(wire_a, b, got_b)
    pump(b.data_to_send(), a, got_a)
    sent = [payload(n, i) for i, n in enumerate(sizes)]
    pump(a.data_to_send() + b"".join(a.send(m) for m in sent), b, got_b)
    pump(b.data_to_send() + b"".join(b.send(m) for m in sent), a, got_a)
    want = [m for m in sent if m]
    assert got_b == want and got_a == want


def test_large_messages() -> None:
    a, b = connected_pair()
    big = random.randbytes(1 << 20)
    assert messages(b.receive_data(a.send(big))) == [big]
    with pytest.raises(EncodeError):
        a.send(bytes(MAX_PLAINTEXT + 1))


def test_max_message_size_limits_both_directions() -> None:
    a, b = connected_pair(max_message_size=1000)
    with pytest.raises(EncodeError):
        a.send(bytes(1001))
    a2, _ = connected_pair()
    err = closed_error(b.receive_data(a2.send(bytes(5000))))
    assert isinstance(err, DecodeError)


def test_pre_completed_handshake() -> None:
    a, b = connected_pair()
    assert a._result is not None and b._result is not None
    c = SecretStream(True, handshake=a._result)
    d = SecretStream(False, handshake=b._result)
    d.receive_data(c.initiate())
    c.receive_data(d.initiate())
    assert messages(d.receive_data(c.send(b"x"))) == [b"x"]


def test_send_before_handshake_and_after_close_fail() -> None:
    a = SecretStream(True, NoiseKeyPair.generate())
    a.initiate()
    with pytest.raises(ProtocolError, match="before the handshake"):
        a.send(b"x")
    a.close()
    with pytest.raises(ProtocolError, match="closed"):
        a.send(b"x")
    assert a.receive_data(b"anything") == []


# -- hostile input -------------------------------------------------------------------------


def test_garbage_before_handshake() -> None:
    b = SecretStream(False, NoiseKeyPair.generate())
    err = closed_error(b.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert isinstance(err, DecodeError | HandshakeError)
    assert b.closed and b.receive_data(b"more") == []


def test_sixteen_mib_length_prefix_is_refused_at_once() -> None:
    b = SecretStream(False, NoiseKeyPair.generate())
    err = closed_error(b.receive_data(b"\xff\xff\xff"))
    assert isinstance(err, DecodeError) and "limit" in str(err)
    _a, b2 = connected_pair(max_message_size=1 << 16)
    err = closed_error(b2.receive_data(b"\xff\xff\xff" + b"\x00" * 10))
    assert isinstance(err, DecodeError)


def test_truncated_handshake_then_eof() -> None:
    a = SecretStream(True, NoiseKeyPair.generate())
    b = SecretStream(False, NoiseKeyPair.generate())
    msg1 = a.initiate()
    assert b.receive_data(msg1[:20]) == []
    err = closed_error(b.receive_eof())
    assert isinstance(err, DecodeError) and "inside a frame" in str(err)
    c = SecretStream(False, NoiseKeyPair.generate())
    c.receive_data(msg1)
    assert isinstance(closed_error(c.receive_eof()), HandshakeError)


def test_short_noise_frames() -> None:
    b = SecretStream(False, NoiseKeyPair.generate())
    assert isinstance(closed_error(b.receive_data(encode_frame(b"\x01" * 10))), HandshakeError)
    c = SecretStream(False, NoiseKeyPair.generate())
    assert isinstance(closed_error(c.receive_data(encode_frame(b""))), HandshakeError)


def test_bad_mac_after_handshake() -> None:
    a, b = connected_pair()
    frame = bytearray(a.send(b"attack at dawn"))
    frame[-1] ^= 0x01
    err = closed_error(b.receive_data(bytes(frame)))
    assert isinstance(err, ProtocolError) and "authentication" in str(err)
    with pytest.raises(ProtocolError):
        b.send(b"x")


def test_replayed_frame_fails() -> None:
    a, b = connected_pair()
    frame = a.send(b"once")
    assert messages(b.receive_data(frame)) == [b"once"]
    assert isinstance(closed_error(b.receive_data(frame)), ProtocolError)


def test_data_frame_shorter_than_abytes() -> None:
    _a, b = connected_pair()
    assert isinstance(closed_error(b.receive_data(encode_frame(b"\x00" * 16))), ProtocolError)


def header_exchange(mutate: Any) -> list[Event]:
    a = SecretStream(True, NoiseKeyPair.generate())
    b = SecretStream(False, NoiseKeyPair.generate())
    b.receive_data(a.initiate())
    a.receive_data(b.data_to_send())
    out = a.data_to_send()
    msg3, header = out[:67], out[67:]
    return b.receive_data(msg3 + mutate(header))


def test_wrong_stream_id() -> None:
    err = closed_error(header_exchange(lambda h: h[:3] + bytes(32) + h[35:]))
    assert isinstance(err, HandshakeError) and "stream id" in str(err)


def test_reflected_header_is_refused() -> None:
    a = SecretStream(True, NoiseKeyPair.generate())
    b = SecretStream(False, NoiseKeyPair.generate())
    b.receive_data(a.initiate())
    a.receive_data(b.data_to_send())
    own_header = a.data_to_send()[67:]
    a_err = closed_error(a.receive_data(own_header))  # our own id comes back: wrong role
    assert isinstance(a_err, HandshakeError)


def test_header_of_wrong_length() -> None:
    err = closed_error(header_exchange(lambda h: encode_frame(h[3:] + b"\x00")))
    assert isinstance(err, HandshakeError) and "length" in str(err)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.booleans())
def test_fuzz_handshake_receiver(data: bytes, initiator: bool) -> None:
    s = SecretStream(initiator, NoiseKeyPair.generate())
    s.initiate()
    events = s.receive_data(data) + s.receive_eof()
    assert not any(isinstance(e, HandshakeComplete | Message) for e in events)
    assert isinstance(closed_error(events), HyperlobbyError)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_open_stream_receiver(data: bytes) -> None:
    _, b = connected_pair()
    events = b.receive_data(data)
    assert not any(isinstance(e, Message) and e.data for e in events)


# -- framing decoder -----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20), st.lists(st.integers(1, 64), min_size=1))
def test_fuzz_framing_roundtrip_any_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(encode_frame(p) for p in payloads)
    dec = FrameDecoder()
    got: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(wire):
        n = cuts[i % len(cuts)]
        got.extend(dec.feed(wire[pos : pos + n]))
        pos += n
        i += 1
    assert got == payloads and dec.buffered == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=300), max_size=20),
    st.lists(st.integers(1, 64), min_size=1),
    st.lists(st.integers(0, 3), min_size=1),
)
def test_fuzz_framing_pulls_late(payloads: list[bytes], cuts: list[int], pulls: list[int]) -> None:
    """Chunks appended before the frames already held are pulled (straddling or not) still come
    out in order and whole."""
    wire = b"".join(encode_frame(p) for p in payloads)
    dec = FrameDecoder()
    got: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(wire):
        dec.append(wire[pos : pos + cuts[i % len(cuts)]])
        pos += cuts[i % len(cuts)]
        for _ in range(pulls[i % len(pulls)]):
            frame = dec.next_frame()
            if frame is not None:
                got.append(frame)
        i += 1
    while (frame := dec.next_frame()) is not None:
        got.append(frame)
    assert got == payloads and dec.buffered == 0
    assert all(type(f) is bytes for f in got)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=500), st.integers(0, 400))
def test_fuzz_framing_random_bytes(data: bytes, limit: int) -> None:
    dec = FrameDecoder(limit)
    try:
        frames = dec.feed(data)
    except DecodeError:
        with pytest.raises(DecodeError):
            dec.feed(b"x")
        return
    assert all(len(f) <= limit for f in frames)
    assert sum(3 + len(f) for f in frames) + dec.buffered == len(data)


def test_framing_limits() -> None:
    assert FrameDecoder().feed(b"\xff\xff\xff") == []  # a full-size frame is legal, just incomplete
    with pytest.raises(DecodeError):
        FrameDecoder(100).feed(b"\x65\x00\x00")
    with pytest.raises(DecodeError):
        encode_frame(bytes(MAX_FRAME + 1))
    dec = FrameDecoder()
    big = bytes(range(256)) * 4096
    frame = encode_frame(big)
    out: list[bytes] = []
    for k in range(0, len(frame), 65536):
        out += dec.feed(frame[k : k + 65536])
    assert out == [big]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=100), max_size=10), st.lists(st.integers(1, 40), min_size=1))
def test_framing_append_without_pulling(payloads: list[bytes], cuts: list[int]) -> None:
    """Appending several chunks before pulling any frame still yields every frame in order."""
    wire = b"".join(encode_frame(p) for p in payloads)
    dec = FrameDecoder()
    pos = 0
    i = 0
    while pos < len(wire):
        n = cuts[i % len(cuts)]
        dec.append(wire[pos : pos + n])
        pos += n
        i += 1
    got = []
    while (f := dec.next_frame()) is not None:
        got.append(f)
    assert got == payloads and dec.buffered == 0
