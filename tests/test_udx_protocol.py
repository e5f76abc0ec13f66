"""Sans-IO UDX: the codec against bytes udx-native put on the wire, fuzzing, and two state
machines talking through an in-memory network that drops, duplicates and reorders packets."""

from __future__ import annotations

import contextlib
import random
import struct

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hyperlobby.errors import DecodeError, ProtocolError
from hyperlobby.swarm import udx_protocol
from hyperlobby.swarm.udx_protocol import (
    FLAG_DATA,
    FLAG_END,
    FLAG_HEARTBEAT,
    FLAG_MESSAGE,
    FLAG_SACK,
    HEADER_SIZE,
    MAX_ETHERNET_PAYLOAD,
    Packet,
    StreamClosed,
    StreamData,
    StreamMessage,
    UdxStreamState,
    decode_packet,
    is_udx,
    peek_stream_id,
)
from udx_sim import DROP, DUPLICATE, Network

# Datagrams captured between two udx-native 1.21.3 sockets on loopback (see udx_protocol's docstring).
CAPTURED_DATA_END = "ff01030002000000000040000000000000000000" + b"hello".hex()
CAPTURED_ACK = "ff010000010000000000400000000000" + "01000000"
CAPTURED_SACK = "ff01040001000000000040000000000002000000" + "0300000004000000" + "0500000006000000"
CAPTURED_PROBE = "ff01012002000000000040001e00000000000000" + "00" * 32 + "0707"
CAPTURED_HEARTBEAT = "ff01200002000000000040000100000000000000"


def test_decode_captured_udx_native_packets() -> None:
    p = decode_packet(bytes.fromhex(CAPTURED_DATA_END))
    assert (p.type, p.stream_id, p.recv_window, p.seq, p.ack, p.data) == (
        FLAG_DATA | FLAG_END,
        2,
        4 * 1024 * 1024,
        0,
        0,
        b"hello",
    )
    ack = decode_packet(bytes.fromhex(CAPTURED_ACK))
    assert (ack.type, ack.stream_id, ack.ack, ack.data, ack.sacks) == (0, 1, 1, b"", ())
    sack = decode_packet(bytes.fromhex(CAPTURED_SACK))
    assert sack.type == FLAG_SACK and sack.ack == 2 and sack.sacks == ((3, 4), (5, 6))
    probe = decode_packet(bytes.fromhex(CAPTURED_PROBE))
    assert probe.padding == 32 and probe.data == b"\x07\x07" and probe.seq == 30
    beat = decode_packet(bytes.fromhex(CAPTURED_HEARTBEAT))
    assert beat.type == FLAG_HEARTBEAT and beat.seq == 1
    for hexed in (CAPTURED_DATA_END, CAPTURED_ACK, CAPTURED_SACK, CAPTURED_PROBE, CAPTURED_HEARTBEAT):
        raw = bytes.fromhex(hexed)
        assert decode_packet(raw).encode() == raw
        assert is_udx(raw)
    assert peek_stream_id(bytes.fromhex(CAPTURED_DATA_END)) == 2


def test_our_first_packets_match_what_udx_native_sends() -> None:
    """Same bytes as the capture for write(b"hello") + end() on a fresh stream 1 -> 2."""
    a = UdxStreamState(1, remote_id=2)
    a.write(b"hello")
    a.end()
    # udx-native folds END into the last data packet only when both are queued together;
    # ours always does that once end() is queued before the flush.
    assert a.packets_to_send(0.0) == [bytes.fromhex(CAPTURED_DATA_END)]
    b = UdxStreamState(2, remote_id=1)
    b.receive(bytes.fromhex(CAPTURED_DATA_END), 0.0)
    b.read_done(5)  # the window we advertise shrinks by what the application has not read yet
    assert b.packets_to_send(0.0) == [bytes.fromhex(CAPTURED_ACK)]


@given(
    st.builds(
        Packet,
        type=st.sampled_from([0, FLAG_DATA, FLAG_DATA | FLAG_END, FLAG_END, FLAG_MESSAGE, FLAG_HEARTBEAT]),
        stream_id=st.integers(0, 2**32 - 1),
        recv_window=st.integers(0, 2**32 - 1),
        seq=st.integers(0, 2**32 - 1),
        ack=st.integers(0, 2**32 - 1),
        data=st.binary(max_size=200),
        padding=st.integers(0, 255),
    )
)
def test_packet_roundtrip(packet: Packet) -> None:
    assert decode_packet(packet.encode()) == packet


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=20))
def test_sack_roundtrip(ranges: list[tuple[int, int]]) -> None:
    packet = Packet(FLAG_SACK, 5, 100, 1, 2, sacks=tuple(ranges))
    assert decode_packet(packet.encode()) == packet


@given(st.binary(max_size=120))
def test_decoder_fuzz_raises_only_decode_error(raw: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_packet(raw)


@given(st.binary(min_size=4, max_size=80))
def test_decoder_fuzz_with_valid_magic(tail: bytes) -> None:
    try:
        packet = decode_packet(b"\xff\x01" + tail)
    except DecodeError:
        return
    assert 0 <= packet.seq < 2**32


MALFORMED = st.one_of(
    st.binary(max_size=HEADER_SIZE - 1),  # too short
    st.binary(min_size=HEADER_SIZE, max_size=60).filter(lambda b: b[:2] != b"\xff\x01"),  # not UDX
    # a data offset pointing past the end of the packet
    st.tuples(st.integers(1, 255), st.binary(max_size=40)).map(
        lambda t: bytes([0xFF, 1, FLAG_DATA, max(t[0], len(t[1]) + 1)]) + bytes(16) + t[1]
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MALFORMED, max_size=40), st.integers(0, 2**32 - 1))
def test_malformed_packets_are_ignored(garbage: list[bytes], salt: int) -> None:
    a = UdxStreamState(1, remote_id=2)
    b = UdxStreamState(2, remote_id=1)
    data = random.Random(salt).randbytes(30_000)
    a.write(data)
    a.end()
    b.end()
    a.packets_to_send(0.0)  # first flight lost; garbage arrives instead
    for raw in garbage:
        assert b.receive(raw, 0.0) == []
        assert a.receive(raw, 0.0) == []
    net = Network(a, b, [])
    net.run(max_steps=20_000)
    assert bytes(net.sides[1].received) == data
    assert net.sides[0].closed == StreamClosed(None) and net.sides[1].closed == StreamClosed(None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.binary(max_size=60).map(lambda b: b"\xff\x01" + b), max_size=40), st.integers(0, 2**32 - 1)
)
def test_forged_packets_never_raise(garbage: list[bytes], salt: int) -> None:
    """Well-formed packets with hostile fields (UDX has no authentication, so an in-window
    forgery can corrupt the byte stream; secret-stream above detects that) must still never
    raise or break the state machine's bookkeeping. Headers are nudged near the live window
    so they reach deep into ack, SACK and reorder handling."""
    a = UdxStreamState(1, remote_id=2)
    b = UdxStreamState(2, remote_id=1)
    a.write(random.Random(salt).randbytes(30_000))
    a.end()
    b.end()
    a.packets_to_send(0.0)
    rng = random.Random(salt)
    for raw in garbage:
        if len(raw) >= HEADER_SIZE and rng.random() < 0.7:
            seq, ack = rng.randrange(0, 40), rng.randrange(0, 40)
            raw = raw[:12] + seq.to_bytes(4, "little") + ack.to_bytes(4, "little") + raw[20:]
        b.receive(raw, 0.0)
        a.receive(raw, 0.0)
    net = Network(a, b, [])
    net.run(max_steps=20_000, max_time=60.0)
    for state in (a, b):
        assert state._inflight_pkts >= 0 and state._inflight_bytes >= 0 and state.send_buffered >= 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 0x3F), st.integers(0, 3), st.integers(0, 40), st.binary(max_size=8))),
    st.integers(21, 40),
)
def test_forged_coalesced_runs_never_raise(fields: list[tuple[int, int, int, bytes]], segment: int) -> None:
    """A coalesced read glued from hostile datagrams (any flags, data offsets, sequence
    numbers and stream ids, a short tail): receive_run takes at most its in-order prefix
    and never raises; the rest goes through receive() as the socket would send it."""
    b = UdxStreamState(2, remote_id=1, recv_window=200)
    parts = []
    for flags, offset, seq, tail in fields:
        stream_id = 2 if seq % 5 else 3
        body = (tail * segment)[: segment - HEADER_SIZE]
        parts.append(bytes([0xFF, 1, flags, offset]) + struct.pack("<IIII", stream_id, 9999, seq, 0) + body)
    if parts:
        parts[-1] = parts[-1][: HEADER_SIZE + len(fields) % 7]
    buffer = b"".join(parts)
    events, used = b.receive_run(buffer, segment, 0.0)
    assert 0 <= used <= len(buffer) and (used % segment == 0 or used == len(buffer))
    assert sum(len(e.data) for e in events if isinstance(e, StreamData)) == b.unread_bytes
    for k in range(used, len(buffer), segment):
        b.receive(buffer[k : k + segment], 0.0)
    assert b._inflight_pkts == 0 and b.unread_bytes >= 0


def test_coalesced_run_stops_at_another_streams_packet() -> None:
    """GRO glues datagrams by sender address, not by stream: a run must end where a packet
    for another stream id, a gap or an END starts, leaving that to be routed on its own."""
    a = UdxStreamState(1, remote_id=2, max_payload=100)
    b = UdxStreamState(2, remote_id=1, max_payload=100)
    data = bytes(range(250)) * 2
    a.write(data)
    a.end()
    d = a.packets_to_send(0.0)
    assert [len(x) for x in d] == [120] * 5 and d[4][2] == FLAG_DATA | FLAG_END
    foreign = d[2][:4] + (7).to_bytes(4, "little") + d[2][8:]
    events, used = b.receive_run(b"".join([d[0], d[1], foreign, d[3]]), 120, 0.0)
    assert (events, used) == ([StreamData(data[:200])], 240)
    assert b.receive_run(b"".join([d[3], d[4]]), 120, 0.0) == ([], 0)  # a gap: d[2] is missing
    events, used = b.receive_run(b"".join(d[2:]), 120, 0.0)
    assert (events, used) == ([StreamData(data[200:400])], 240)  # the END packet is left over
    events = b.receive(d[4], 0.0)
    assert events[0] == StreamData(data[400:]) and b.remote_ended


@pytest.mark.parametrize("payload", [50, 52])  # segments of 70 and 72 bytes: header by header, and as columns
@pytest.mark.parametrize("windows", [[900, 900, 900, 900], [900, 900, 700, 500]])
def test_coalesced_run_applies_every_window_change(windows: list[int], payload: int) -> None:
    """A run's piggybacked windows and acks are applied in order: the last one counts."""
    b = UdxStreamState(2, remote_id=1)
    run = b"".join(
        Packet(FLAG_DATA, 2, w, seq, 0, bytes([seq]) * payload).encode() for seq, w in enumerate(windows)
    )
    events, used = b.receive_run(run, payload + HEADER_SIZE, 0.0)
    assert used == len(run) and events == [StreamData(b"".join(bytes([i]) * payload for i in range(4)))]
    assert b.remote_window == windows[-1] and b._rcv_nxt == 4


def _receiver_after_sending(sent: int) -> UdxStreamState:
    """A stream that has ``sent`` packets in flight to its peer, so piggybacked acks matter."""
    b = UdxStreamState(2, remote_id=1, max_payload=10, initial_seq=4000)
    b.write(bytes(10 * sent))
    b.packets_to_send(0.0)
    return b


@settings(max_examples=150, deadline=None)
@given(
    count=st.integers(2, 40),
    payload=st.sampled_from([12, 13, 52, 100]),
    start=st.sampled_from([0, 250, 2**32 - 5]),
    tail=st.integers(0, 99),
    changes=st.lists(
        st.tuples(
            st.integers(0, 39),
            st.sampled_from(["seq", "id", "flags", "offset", "ack", "window", "magic"]),
            st.integers(0, 2**32 - 1),
        ),
        max_size=3,
    ),
)
def test_coalesced_run_checked_as_columns_or_one_by_one_agree(
    count: int, payload: int, start: int, tail: int, changes: list[tuple[int, str, int]]
) -> None:
    """The column check of a run (segments that are a multiple of four) must take exactly
    what the header-by-header scan takes, whatever field of whichever packet is off, with
    acks and windows that change inside the run, across the 2**32 wrap, and with a shorter
    last datagram."""
    fields = [
        {
            "magic": 0xFF,
            "flags": FLAG_DATA,
            "offset": 0,
            "id": 2,
            "window": 5000,
            "seq": (start + i) & 0xFFFFFFFF,
            "ack": 4000 + i // 3,
        }
        for i in range(count)
    ]
    for index, name, value in changes:
        if index < count:
            fields[index][name] = value % 256 if name in ("magic", "flags", "offset") else value
    datagrams = [
        struct.pack(
            "<BBBBIIII", f["magic"], 1, f["flags"], f["offset"], f["id"], f["window"], f["seq"], f["ack"]
        )
        + bytes([i]) * payload
        for i, f in enumerate(fields)
    ]
    datagrams[-1] = datagrams[-1][: HEADER_SIZE + payload * tail // 100]
    buffer = b"".join(datagrams)
    outcomes = []
    for columns in (True, False):
        b = _receiver_after_sending(10)
        b._rcv_nxt = start
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(udx_protocol, "_WORD_VIEWS", columns)
            events, used = b.receive_run(buffer, payload + HEADER_SIZE, 1.0)
        outcomes.append((events, used, b._rcv_nxt, b._snd_una, b.remote_window, b.unread_bytes, b.closed))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("initial_seq", [0, 250, 2**32 - 10])
def test_burst_headers_match_packet_by_packet_encoding(initial_seq: int) -> None:
    """Burst headers are built by strided writes of the sequence number: across a carry out
    of its low byte and across the 2**32 wrap they must equal what Packet.encode writes."""
    a = UdxStreamState(1, remote_id=9, initial_seq=initial_seq, max_payload=100)
    a.cwnd = 200.0
    data = bytes(range(256)) * 20
    a.write(data)
    datagrams = a.packets_to_send(0.0)
    assert len(datagrams) == len(data) // 100 + 1
    for i, datagram in enumerate(datagrams):
        seq = (initial_seq + i) & 0xFFFFFFFF
        expected = Packet(FLAG_DATA, 9, a._advertised, seq, 0, data[100 * i : 100 * i + 100]).encode()
        assert datagram == expected


def transfer(
    pattern: list[int], size_a: int, size_b: int, seed: int, coalesce: bool = False, **opts: int
) -> Network:
    rng = random.Random(seed)
    # The loss pattern is indexed by packet, and near the end each retransmission timeout
    # sends only a packet or two, so a run of drops there can outlast the 20 s default
    # timeout (a correct outcome, e.g. pattern [0, 0, 0] + [DROP] * 6 on empty streams).
    # Delivery is what these tests are about: give the streams time to see the network heal.
    a = UdxStreamState(1, remote_id=2, timeout=1e6, **opts)
    b = UdxStreamState(2, remote_id=1, timeout=1e6, **opts)
    data_a, data_b = rng.randbytes(size_a), rng.randbytes(size_b)
    a.write(data_a)
    a.end()
    b.write(data_b)
    b.end()
    net = Network(a, b, pattern, coalesce=coalesce)
    net.run(max_time=len(pattern) * 10.0 + 600.0)  # MAX_RTO per lost packet, and then some
    side_a, side_b = net.sides
    assert bytes(side_b.received) == data_a
    assert bytes(side_a.received) == data_b
    assert side_a.ended and side_b.ended
    assert side_a.closed == StreamClosed(None) and side_b.closed == StreamClosed(None)
    for state in (a, b):  # everything acked: no packet record, run or in-flight count left
        assert not state._out and not state._runs and not state._run_starts
        assert state._inflight_pkts == 0 and state._inflight_bytes == 0 and state.send_buffered == 0
    return net


FATES = st.sampled_from([0, 0, 0, 1, 2, 3, 5, 6, DROP, DROP, DUPLICATE])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pattern=st.lists(FATES, max_size=400),
    size_a=st.integers(0, 120_000),
    size_b=st.integers(0, 20_000),
    seed=st.integers(0, 2**32 - 1),
    coalesce=st.booleans(),
)
@example(pattern=[0, 0, 0, DROP, DROP, DROP, DROP, DROP, DROP], size_a=0, size_b=0, seed=0, coalesce=False)
@example(pattern=[0, DROP, 0, DROP, DROP, DROP, DROP, DROP], size_a=0, size_b=0, seed=0, coalesce=False)
def test_every_byte_once_in_order_despite_loss_duplication_reordering(
    pattern: list[int], size_a: int, size_b: int, seed: int, coalesce: bool
) -> None:
    transfer(pattern, size_a, size_b, seed, coalesce)


@pytest.mark.parametrize("coalesce", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_larger_transfers_under_random_loss(seed: int, coalesce: bool) -> None:
    """Hypothesis favours small cases; these are bigger (up to ~300 packets each way)."""
    rng = random.Random(seed)
    choices = [0, 0, 0, 0, 3, 5, 6, DROP, DUPLICATE]
    pattern = [rng.choice(choices) for _ in range(rng.randint(50, 600))]
    transfer(pattern, rng.randint(100_000, 350_000), rng.randint(0, 50_000), seed, coalesce)


def test_coalesced_reads_take_whole_runs() -> None:
    """On a clean network nearly every data packet arrives in a run (a GRO read) and is taken
    by receive_run; the bytes still come out once each, in order."""
    net = transfer([], 1_000_000, 0, 3, True, max_payload=2028)
    data_packets = -(-1_000_000 // 2028)
    assert net.coalesced >= data_packets * 0.9


@pytest.mark.parametrize("seed", range(4))
def test_coalesced_reads_with_duplicates_and_reordering(seed: int) -> None:
    """Runs that hold duplicates, packets from the past and gaps: receive_run must take only
    the in-order prefix and leave the rest to receive()."""
    rng = random.Random(seed)
    pattern = [rng.choice([0, 0, 0, 0, 0, 0, 1, DROP, DUPLICATE]) for _ in range(3000)]
    net = transfer(pattern, 600_000, 60_000, seed, True, max_payload=1452)
    assert net.coalesced > 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(sizes=[301, 3401], payload=100, seed=0, coalesce=False)  # acks lost until a timeout
@given(
    sizes=st.lists(st.integers(0, 5000), max_size=60),
    payload=st.sampled_from([100, 1152, 2028]),
    seed=st.integers(0, 2**32 - 1),
    coalesce=st.booleans(),
)
def test_writes_of_any_size_and_type_arrive_whole(
    sizes: list[int], payload: int, seed: int, coalesce: bool
) -> None:
    """Packets are cut from views of the written chunks: writes of any size (bursts and single
    packets spanning several writes) and any bytes-like type come out as one byte stream; a
    bytearray changed after write() must not change what is sent."""
    rng = random.Random(seed)
    # A long timeout and a short loss pattern: with few packets left, each retransmission
    # timeout consumes one fate, so a long run of drops could otherwise (rightly) time out.
    a = UdxStreamState(1, remote_id=2, max_payload=payload, timeout=1000.0)
    b = UdxStreamState(2, remote_id=1, max_payload=payload, timeout=1000.0)
    expected = bytearray()
    net = Network(a, b, [rng.choice([0, 0, 0, 2, DROP, DUPLICATE]) for _ in range(60)], coalesce=coalesce)
    for i, size in enumerate(sizes):
        chunk = rng.randbytes(size)
        expected += chunk
        if i % 3 == 1:
            mutable = bytearray(chunk)
            a.write(mutable)
            mutable[:] = bytes(len(mutable))
        elif i % 3 == 2:
            a.write(memoryview(chunk))
        else:
            a.write(chunk)
        if i % 4 == 0:
            net.flush()  # some packets leave between writes
    a.end()
    b.end()
    net.run()
    assert bytes(net.sides[1].received) == bytes(expected)
    assert net.sides[0].closed == StreamClosed(None) and net.sides[1].closed == StreamClosed(None)


def test_heavy_loss_burst_then_recovery() -> None:
    rng = random.Random(5)
    pattern = [DROP] * 12 + [DROP if rng.random() < 0.3 else rng.randrange(7) for _ in range(600)]
    net = transfer(pattern, 200_000, 1000, 1)
    assert net.sides[0].state.retransmits > 0


@pytest.mark.parametrize("coalesce", [False, True])
def test_tiny_receive_window_and_payload(coalesce: bool) -> None:
    transfer([0, 3, DROP, 5] * 50, 50_000, 5_000, 2, coalesce, recv_window=3000, max_payload=500)


@pytest.mark.parametrize("coalesce", [False, True])
def test_sequence_numbers_wrap(coalesce: bool) -> None:
    a = UdxStreamState(1, remote_id=2, initial_seq=2**32 - 5)
    b = UdxStreamState(2, remote_id=1, remote_initial_seq=2**32 - 5)
    data = bytes(range(256)) * 100
    a.write(data)
    a.end()
    b.end()
    net = Network(a, b, [0, DROP, 3] * 20, coalesce=coalesce)
    net.run()
    assert bytes(net.sides[1].received) == data
    assert net.sides[0].closed == StreamClosed(None)


def test_unreachable_peer_times_out() -> None:
    a = UdxStreamState(1, remote_id=2, timeout=5.0)
    b = UdxStreamState(2, remote_id=1)
    a.write(b"x" * 5000)
    net = Network(a, b, [DROP] * 10_000)
    net.run(max_time=100.0)
    closed = net.sides[0].closed
    assert closed is not None and isinstance(closed.error, ProtocolError)


def test_destroy_resets_the_peer() -> None:
    a = UdxStreamState(1, remote_id=2)
    b = UdxStreamState(2, remote_id=1)
    net = Network(a, b, [])
    net.sides[0].absorb(a.destroy())
    net.run()
    closed = net.sides[1].closed
    assert closed is not None and isinstance(closed.error, ProtocolError)
    assert a.packets_to_send(1.0) == []  # nothing more after the DESTROY


def test_messages_and_heartbeats() -> None:
    a = UdxStreamState(1, remote_id=2, keepalive=1.0)
    b = UdxStreamState(2, remote_id=1)
    a.send_message(b"ping")
    [msg] = a.packets_to_send(0.0)
    assert decode_packet(msg).type == FLAG_MESSAGE
    assert b.receive(msg, 0.0) == [StreamMessage(b"ping")]
    assert b.packets_to_send(0.0) == []  # messages are not acknowledged
    assert a.next_deadline() == 1.0
    a.on_timer(1.0)
    [beat] = a.packets_to_send(1.0)
    assert decode_packet(beat).type == FLAG_HEARTBEAT
    b.receive(beat, 1.0)
    [ack] = b.packets_to_send(1.0)
    assert decode_packet(ack).type == 0


def test_write_after_end_is_refused() -> None:
    a = UdxStreamState(1, remote_id=2)
    a.end()
    with pytest.raises(ProtocolError):
        a.write(b"late")


def test_back_pressure_counts_unsent_bytes_only() -> None:
    """What is in flight is bounded by the windows already, so back-pressure looks at the
    bytes not sent yet: sending moves bytes out of send_pending but keeps them in
    send_buffered (for retransmission) until acked."""
    a = UdxStreamState(1, remote_id=2, max_payload=1000)
    b = UdxStreamState(2, remote_id=1, max_payload=1000)
    a.write(bytes(50_000))
    assert a.send_pending == a.send_buffered == 50_000
    sent = a.packets_to_send(0.0)
    assert len(sent) == 10  # the initial congestion window
    assert a.send_pending == 40_000 and a.send_buffered == 50_000
    for datagram in sent:
        b.receive(datagram, 0.01)
    for ack in b.packets_to_send(0.01):
        a.receive(ack, 0.02)
    assert a.send_buffered == 40_000 and a.send_pending == 40_000


def _transfer_through_path(
    mtu_payload: int, total: int, *, ipv6: bool = False
) -> tuple[UdxStreamState, bytes, int]:
    """Bulk data over a path that drops every datagram with more than ``mtu_payload`` bytes
    of payload (header and padding included, as a router would see it). Returns the sender,
    the bytes received and how many datagrams the path dropped."""
    a = UdxStreamState(1, remote_id=2)
    b = UdxStreamState(2, remote_id=1)
    if ipv6:
        a.set_path_ipv6()
    data = random.Random(5).randbytes(total)
    a.write(data)
    a.end()
    received = bytearray()
    dropped = 0
    now = 0.0
    for _ in range(20_000):
        for datagram in a.packets_to_send(now):
            if len(datagram) - HEADER_SIZE > mtu_payload:
                dropped += 1
                continue
            received += b"".join(e.data for e in b.receive(datagram, now) if isinstance(e, StreamData))
        for datagram in b.packets_to_send(now):
            a.receive(datagram, now)
        now += 0.005
        for side in (a, b):
            deadline = side.next_deadline()
            if deadline is not None and deadline <= now:
                side.on_timer(now)
        if b.remote_ended and not a._out and not a._runs:
            break
    return a, bytes(received), dropped


def test_mtu_probes_raise_the_payload_to_what_the_path_carries() -> None:
    """A stream of the default size pads one packet at a time (through the data offset, as
    udx-native does) and takes each size that gets acked: 1152 -> 1407 -> 1452 on a
    1500-byte path, with the data intact and nothing lost."""
    a, received, dropped = _transfer_through_path(MAX_ETHERNET_PAYLOAD, 2_000_000)
    assert received == random.Random(5).randbytes(2_000_000)
    assert a.max_payload == MAX_ETHERNET_PAYLOAD and dropped == 0 and a.retransmits == 0


def test_mtu_probes_that_are_lost_search_down_and_cost_no_congestion_window() -> None:
    """On a path that carries 1300-byte payloads, the 1407-byte probe is lost three times;
    the search then settles between 1152 and 1300. Lost probes are resent unpadded (their
    data fits), so every byte still arrives once, and the window is never halved for them."""
    a, received, dropped = _transfer_through_path(1300, 3_000_000)
    assert received == random.Random(5).randbytes(3_000_000)
    assert 1152 < a.max_payload <= 1300 and dropped >= 3
    assert a.retransmits == dropped  # only the probes were lost and resent
    assert a.ssthresh == 4096  # never in recovery: probe losses are not congestion


def test_mtu_probing_stays_off_for_explicit_sizes_and_within_ipv6_headers() -> None:
    fixed = UdxStreamState(1, remote_id=2, max_payload=1200)
    fixed.write(bytes(200_000))
    assert {len(d) for d in fixed.packets_to_send(0.0)} == {1220}  # no padded probe among them
    a, received, _ = _transfer_through_path(MAX_ETHERNET_PAYLOAD, 1_000_000, ipv6=True)
    assert a.max_payload == 1500 - 48 - HEADER_SIZE and len(received) == 1_000_000
