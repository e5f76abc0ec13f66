"""Protomux against frames and events recorded from two real JS Protomux 3.12.1 instances.

Each scenario in ``vectors/protomux.json`` is a list of steps; :class:`Replay` runs the same
steps on two Python muxes joined the same way (frames queued per side, delivered one at a time,
alternating) and must write byte-identical frames in the same order and see the same events.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import load_vectors, run_node
from hyperlobby.encoding.compact import uint_bytes
from hyperlobby.errors import ProtocolError
from hyperlobby.wire.protomux import (
    MAX_BATCH_DEPTH,
    MAX_BUFFERED,
    Channel,
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    ChannelRejected,
    Mux,
    MuxUsageError,
    RemoteOpenRequest,
)

VECTORS = load_vectors("protomux")
BIG = 65536


def frame_record(side: str, frame: bytes) -> dict[str, Any]:
    if len(frame) > BIG:
        return {"from": side, "len": len(frame), "sha256": hashlib.sha256(frame).hexdigest()}
    return {"from": side, "hex": frame.hex()}


def step_body(step: dict[str, Any]) -> bytes:
    if "fill" in step:
        return bytes([step["fill"]["byte"]]) * step["fill"]["length"]
    return bytes.fromhex(step.get("body", ""))


class Side:
    def __init__(self, name: str, replay: Replay) -> None:
        self.name = name
        self.replay = replay
        self.mux = Mux()
        self.queue: list[bytes] = []
        self.channels: dict[str, Channel] = {}
        self.names: dict[int, str] = {}
        self.pairs: dict[str, dict[str, Any]] = {}
        self.pair_counts: dict[str, int] = {}
        self.dead = False

    def flush_out(self, frames: list[bytes] | None = None) -> None:
        for f in (frames if frames is not None else []) + self.mux.data_to_send():
            self.replay.frames.append(frame_record(self.name, f))
            self.queue.append(f)

    def record(self, ev: str, ch: Channel | None = None, **extra: Any) -> None:
        rec: dict[str, Any] = {"side": self.name, "ev": ev}
        if ch is not None:
            rec["ch"] = self.names[id(ch)]
        rec.update(extra)
        self.replay.events.append(rec)

    def open(self, name: str, spec: dict[str, Any]) -> None:
        ch = self.mux.open_channel(
            spec["protocol"],
            bytes.fromhex(spec["id"]) if spec.get("id") else None,
            bytes.fromhex(spec.get("handshake", "")),
            aliases=spec.get("aliases", ()),
            message_types=spec.get("messages", 1),
        )
        self.channels[name] = ch
        self.names[id(ch)] = name
        self.handle(self.mux.events())
        self.flush_out()

    def handle(self, events: list[Any]) -> None:
        for ev in events:
            if isinstance(ev, ChannelOpened):
                self.record("open", ev.channel, handshake=ev.remote_handshake.hex())
            elif isinstance(ev, ChannelMessage):
                self.record("message", ev.channel, type=ev.type, body=ev.body.hex())
            elif isinstance(ev, ChannelClosed | ChannelRejected):
                self.record("close", ev.channel, remote=True)
            elif isinstance(ev, RemoteOpenRequest):
                spec = self.pairs.get(ev.protocol)
                assert spec is not None
                if spec["answer"] != "accept":
                    self.mux.decline(ev)
                    continue
                n = self.pair_counts.get(spec["ch"], 0) + 1
                self.pair_counts[spec["ch"]] = n
                name = spec["ch"] if n == 1 else f"{spec['ch']}#{n}"
                self.open(name, {**spec, "id": ev.id.hex() if ev.id else None})
            else:  # pragma: no cover
                raise AssertionError(ev)

    def deliver(self, frame: bytes) -> None:
        if self.dead:
            return
        try:
            events = self.mux.receive(frame)
        except ProtocolError:
            self.dead = True
            self.handle(self.mux.events())  # what the frame did before the fatal part
            self.replay.events.append({"side": self.name, "ev": "destroy"})
            self.handle(self.mux.shutdown())
            return
        if self.mux.received_batch:
            # JS corks its replies to a multi-entry batch until its handlers are done.
            self.mux.cork()
            self.handle(events)
            self.flush_out(self.mux.uncork())
        else:
            self.handle(events)
            self.flush_out()


class Replay:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.sides = {"a": Side("a", self), "b": Side("b", self)}

    def run(self, steps: list[dict[str, Any]]) -> None:
        for step in steps:
            s = self.sides.get(step.get("side", "a"), self.sides["a"])
            op = step["op"]
            if op == "open":
                s.open(step["ch"], step)
            elif op == "pair":
                s.pairs[step["protocol"]] = step
                s.mux.pair(step["protocol"], bytes.fromhex(step["id"]) if step.get("id") else None)
            elif op == "send":
                s.flush_out(s.mux.send(s.channels[step["ch"]], step["type"], step_body(step)))
            elif op == "cork":
                s.mux.cork()
            elif op == "uncork":
                s.flush_out(s.mux.uncork())
            elif op == "close":
                ch = s.channels[step["ch"]]
                was_closed = ch.closed
                frames = s.mux.close(ch)
                if not was_closed:
                    s.record("close", ch, remote=False)
                s.flush_out(frames)
            elif op == "inject":
                s.deliver(bytes.fromhex(step["hex"]))
            elif op == "flush":
                progress = True
                while progress:
                    progress = False
                    for x, y in (("a", "b"), ("b", "a")):
                        src = self.sides[x]
                        if src.queue:
                            self.sides[y].deliver(src.queue.pop(0))
                            progress = True
            else:  # pragma: no cover
                raise AssertionError(op)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_replay_matches_js(name: str) -> None:
    vec = VECTORS[name]
    replay = Replay()
    replay.run(vec["steps"])
    assert replay.frames == vec["frames"]
    assert replay.events == vec["events"]


def test_js_frames_decode_on_python_side() -> None:
    """Every recorded JS frame of a scenario, fed to a Python mux in place of the JS receiver."""
    vec = VECTORS["cork_mixed_batch"]
    replay = Replay()
    replay.run(vec["steps"])
    got_b = [e for e in replay.events if e["side"] == "b"]
    assert got_b == [e for e in vec["events"] if e["side"] == "b"]


@pytest.mark.interop
def test_vector_script_reproduces_committed_json() -> None:
    assert json.loads(run_node("vectors/protomux.js", timeout=120)) == VECTORS


# --- spec examples and unit behaviour -------------------------------------------------------------


def test_spec_frames() -> None:
    a = Mux()
    ch = a.open_channel("echo", message_types=1)
    assert a.data_to_send() == [bytes.fromhex("000101046563686f00")]
    nobody = a.open_channel("nobody", bytes.fromhex("0102"))
    assert a.data_to_send() == [bytes.fromhex("000102066e6f626f6479020102")]
    b = Mux()
    b.receive(bytes.fromhex("000102066e6f626f6479020102")[:0])  # empty frame: ignored
    assert b.receive(bytes.fromhex("000101046563686f00")) == []
    assert b.data_to_send() == [bytes.fromhex("000201")]
    assert a.send(ch, 0, b"\x02hi") == [bytes.fromhex("0100026869")]
    a.cork()
    assert a.send(ch, 0, b"\x01x") == []
    a.send(ch, 0, b"\x01y")
    assert a.uncork() == [bytes.fromhex("0000010300017803000179")]
    assert a.close(ch) == [bytes.fromhex("000301")]
    assert a.send(ch, 0, b"late") == []
    assert a.close(ch) == []
    assert a.receive(bytes.fromhex("000202")) == [ChannelRejected(nobody)]


def test_usage_errors() -> None:
    a, b = Mux(), Mux()
    a.open_channel("x")
    with pytest.raises(MuxUsageError):
        a.open_channel("x")
    a.open_channel("x", unique=False)
    with pytest.raises(MuxUsageError):
        a.uncork()
    other = b.open_channel("y")
    with pytest.raises(MuxUsageError):
        a.send(other, 0, b"")
    assert a.opened("x") and not a.opened("y")


def test_decline_is_stale_safe_and_pause_flag() -> None:
    a, b = Mux(), Mux()
    b.pair("p")
    a.open_channel("p")
    ch_a = next(iter(a))
    (req,) = b.receive(a.data_to_send()[0])
    assert isinstance(req, RemoteOpenRequest)
    for _ in range(70):
        b.receive(a.send(ch_a, 0, b"x" * 10)[0])
    assert b.paused and b.buffered > MAX_BUFFERED
    b.decline(req)
    assert not b.paused and b.buffered == 0
    assert b.data_to_send() == [bytes.fromhex("000201")]
    b.decline(req)  # already answered: nothing more
    assert b.data_to_send() == []


def test_hard_buffer_cap_and_pending_open_cap() -> None:
    b = Mux(max_buffered=4096)
    b.pair("p")
    b.receive(bytes.fromhex("0001010170") + b"\x00")
    with pytest.raises(ProtocolError):
        for _ in range(100):
            b.receive(b"\x01\x00" + b"z" * 100)
    assert b.destroyed
    with pytest.raises(ProtocolError):
        b.receive(b"\x01\x00")
    c = Mux(max_pending_opens=3)
    c.pair("p")
    with pytest.raises(ProtocolError):
        for i in range(1, 10):
            c.receive(b"\x00\x01" + bytes([i]) + b"\x01p\x00")


def _nested(depth: int) -> bytes:
    entry = b"\x03\x00"  # close id 0: ignored
    for _ in range(depth):
        entry = b"\x00\x00" + uint_bytes(len(entry)) + entry  # a batch on channel 0 holding it
    return b"\x00" + entry


def test_nested_batches_are_bounded() -> None:
    assert Mux().receive(_nested(5)) == []
    with pytest.raises(ProtocolError):
        Mux().receive(_nested(MAX_BATCH_DEPTH + 1))


def test_id_reuse_waits_for_ack() -> None:
    a = Mux()
    ch = a.open_channel("lazy")
    a.close(ch)
    # id 1 is not reusable before the peer acknowledged it
    ch2 = a.open_channel("lazy2")
    assert ch2.local_id == 2
    a.receive(bytes.fromhex("000101046c617a7900"))  # the peer's open acks id 1
    ch3 = a.open_channel("lazy3")
    assert ch3.local_id == 1


@given(st.binary(max_size=64))
@settings(max_examples=3000)
def test_fuzz_receive_only_protocol_errors(frame: bytes) -> None:
    m = Mux()
    m.pair("p")
    m.open_channel("p", message_types=2)
    try:
        m.receive(frame)
        m.receive(frame)
    except ProtocolError:
        assert m.destroyed


@given(st.lists(st.binary(max_size=24), max_size=8))
@settings(max_examples=1000)
def test_fuzz_receive_after_open(frames: list[bytes]) -> None:
    m = Mux()
    m.pair("p")
    m.open_channel("q")
    m.receive(bytes.fromhex("0001010171") + b"\x00")  # the peer's q
    for f in frames:
        try:
            for ev in m.receive(f):
                if isinstance(ev, RemoteOpenRequest):
                    m.open_channel(ev.protocol, ev.id, unique=False)
                    m.events()
        except ProtocolError:
            return
