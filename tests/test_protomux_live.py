"""Live interop: the Python Mux against a JS Protomux in a Node child (interop/peers/protomux_peer.js).

The two talk over the child's stdin/stdout with ``u24le(len) ‖ kind ‖ payload`` framing (kind 0 =
protomux frame, kind 1 = JSON command/reply). No encryption: this exercises protomux alone.
Both sides open channels, pair, reject, decline, send plain and corked traffic, close and reopen
(with id reuse), and carry real hypercore messages encoded on one side and decoded on the other.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from conftest import INTEROP, node_binary
from hyperlobby.core.proofs import BlockRequest, DataBlock, TreeNode
from hyperlobby.wire.messages import (
    Bitfield,
    Data,
    Handshake,
    Range,
    Request,
    Sync,
    decode_handshake,
    decode_message,
    encode_handshake,
    encode_message,
)
from hyperlobby.wire.protomux import (
    Channel,
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    ChannelRejected,
    Mux,
    RemoteOpenRequest,
)

pytestmark = pytest.mark.interop

DK = bytes(range(32))
CAP_JS = b"\x3c" * 32
CAP_PY = b"\x7e" * 32


class JsPeer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [node_binary(), str(INTEROP / "peers" / "protomux_peer.js")],
            cwd=INTEROP,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.mux = Mux()
        self.events: list[dict[str, Any]] = []
        self.channels: dict[str, Channel] = {}
        self.names: dict[int, str] = {}
        self.accept: dict[str, bool] = {}
        self.counts: dict[str, int] = {}
        self.sync_no = 0

    def _write(self, kind: int, payload: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((len(payload) + 1).to_bytes(3, "little") + bytes([kind]) + payload)
        self.proc.stdin.flush()

    def _read(self) -> tuple[int, bytes]:
        assert self.proc.stdout is not None
        head = self.proc.stdout.read(4)
        if len(head) < 4:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            pytest.fail(f"JS peer exited: {err}")
        n = int.from_bytes(head[:3], "little") - 1
        return head[3], self.proc.stdout.read(n)

    def cmd(self, **cmd: Any) -> None:
        self._write(1, json.dumps(cmd).encode())

    def flush(self, frames: list[bytes] | None = None) -> None:
        for f in (frames or []) + self.mux.data_to_send():
            self._write(0, f)

    def name(self, ch: Channel) -> str:
        return self.names[id(ch)]

    def open(
        self, name: str, protocol: str, id: bytes | None = None, handshake: bytes = b"", n: int = 2
    ) -> None:
        ch = self.mux.open_channel(protocol, id, handshake, message_types=n, aliases=self._aliases(protocol))
        self.channels[name] = ch
        self.names[id_(ch)] = name
        self._handle(self.mux.events())
        self.flush()

    @staticmethod
    def _aliases(protocol: str) -> tuple[str, ...]:
        return ("hypercore",) if protocol == "hypercore/alpha" else ()

    def _handle(self, events: list[Any]) -> None:
        for ev in events:
            if isinstance(ev, RemoteOpenRequest):
                if not self.accept.get(ev.protocol):
                    self.mux.decline(ev)
                    continue
                k = self.counts[ev.protocol] = self.counts.get(ev.protocol, 0) + 1
                hs = encode_handshake(Handshake(CAP_PY)) if ev.protocol == "hypercore/alpha" else b"py"
                n = 10 if ev.protocol == "hypercore/alpha" else 2
                self.open(f"{ev.protocol}#{k}", ev.protocol, ev.id, hs, n)
            elif isinstance(ev, ChannelOpened):
                self.events.append(
                    {"ev": "open", "ch": self.name(ev.channel), "handshake": ev.remote_handshake}
                )
            elif isinstance(ev, ChannelMessage):
                self.events.append(
                    {"ev": "message", "ch": self.name(ev.channel), "type": ev.type, "body": ev.body}
                )
            elif isinstance(ev, ChannelRejected):
                self.events.append({"ev": "rejected", "ch": self.name(ev.channel)})
            elif isinstance(ev, ChannelClosed):
                self.events.append({"ev": "close", "ch": self.name(ev.channel)})

    def settle(self) -> list[dict[str, Any]]:
        """Exchange frames until both sides are quiet; returns the JS events seen meanwhile."""
        js_events: list[dict[str, Any]] = []
        while True:
            self.flush()
            self.sync_no += 1
            self.cmd(op="sync", n=self.sync_no)
            traffic = False
            while True:
                kind, payload = self._read()
                if kind == 0:
                    traffic = True
                    self._handle(self.mux.receive(payload))
                    self.flush()
                    continue
                reply = json.loads(payload)
                assert reply["sync"] == self.sync_no
                js_events += reply["events"]
                break
            if not traffic and not self.mux.data_to_send():
                return js_events

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


def id_(obj: object) -> int:
    return id(obj)


@pytest.fixture
def peer() -> Any:
    p = JsPeer()
    yield p
    p.close()


def test_live_protomux_with_js(peer: JsPeer) -> None:
    py = peer
    py.mux.pair("from-js")
    py.accept["from-js"] = True
    py.mux.pair("js-declined")
    py.mux.pair("hypercore/alpha")
    py.accept["hypercore/alpha"] = True
    py.cmd(op="pair", protocol="from-py", accept=True, handshake="6a73", messages=2)

    # JS opens, Python accepts; Python opens, JS accepts; Python's open of "nobody" is rejected;
    # JS's open of "js-declined" is declined by Python.
    py.cmd(op="open", name="j1", protocol="from-js", handshake="aabb", messages=2)
    py.open("p1", "from-py", None, b"\x01\x02")
    py.open("nb", "nobody", b"\x09")
    py.cmd(op="open", name="jd", protocol="js-declined", messages=1)
    js = py.settle()
    assert {"ev": "open", "ch": "j1", "handshake": "7079"} in js
    assert {"ev": "open", "ch": "from-py#1", "handshake": "0102"} in js
    assert {"ev": "close", "ch": "jd", "remote": True} in js
    assert {"ev": "open", "ch": "from-js#1", "handshake": b"\xaa\xbb"} in py.events
    assert {"ev": "open", "ch": "p1", "handshake": b"js"} in py.events
    assert {"ev": "rejected", "ch": "nb"} in py.events
    assert py.channels["p1"].local_id == 1 and py.channels["nb"].closed

    # plain and corked messages both ways
    py.events.clear()
    p1, j1 = py.channels["p1"], py.channels["from-js#1"]
    py.flush(py.mux.send(p1, 0, b"one"))
    py.mux.cork()
    py.mux.send(p1, 1, b"two")
    py.mux.send(j1, 0, b"three")
    py.mux.send(p1, 5, b"ignored by js")  # beyond the declared types
    py.mux.send(p1, 0, b"x" * 70000)
    py.flush(py.mux.uncork())
    py.cmd(op="send", name="j1", type=1, body="0102")
    py.cmd(op="cork")
    py.cmd(op="send", name="j1", type=0, body="")
    py.cmd(op="send", name="from-py#1", type=1, body="ff")
    py.cmd(op="send", name="j1", type=0, body="0303")
    py.cmd(op="uncork")
    js = py.settle()
    assert [(e["ch"], e["type"], e["body"]) for e in js if e["ev"] == "message"] == [
        ("from-py#1", 0, b"one".hex()),
        ("from-py#1", 1, b"two".hex()),
        ("j1", 0, b"three".hex()),
        ("from-py#1", 0, "78" * 70000),
    ]
    assert [(e["ch"], e["type"], e["body"]) for e in py.events if e["ev"] == "message"] == [
        ("from-js#1", 1, b"\x01\x02"),
        ("from-js#1", 0, b""),
        ("p1", 1, b"\xff"),
        ("from-js#1", 0, b"\x03\x03"),
    ]

    # close from Python, then reopen: the local id is reused and JS pairs again
    py.events.clear()
    py.flush(py.mux.close(p1))
    js = py.settle()
    assert {"ev": "close", "ch": "from-py#1", "remote": True} in js
    py.open("p2", "from-py", None, b"\x03")
    js = py.settle()
    assert py.channels["p2"].local_id == 1
    assert {"ev": "open", "ch": "from-py#2", "handshake": "03"} in js
    # close from JS
    py.cmd(op="close", name="from-py#2")
    py.settle()
    assert {"ev": "close", "ch": "p2"} in py.events

    # hypercore/alpha: real handshake and message codecs on both ends
    py.events.clear()
    py.cmd(op="open", name="hc", protocol="hypercore/alpha", id=DK.hex(), capability=CAP_JS.hex())
    js = py.settle()
    (opened,) = [e for e in py.events if e["ev"] == "open"]
    assert decode_handshake(opened["handshake"]) == Handshake(CAP_JS, True)
    assert {"ev": "open", "ch": "hc", "handshake": {"seeks": True, "capability": CAP_PY.hex()}} in js
    hc = py.channels["hypercore/alpha#1"]
    node = TreeNode(2, 5, b"\x99" * 32)
    outgoing = [
        Sync(0, 3, 0, True, True, True, True),
        Range(0, 3),
        Data(1, 0, block=DataBlock(0, b"hello", (node,))),
        Bitfield(0, (0x80000001,)),
    ]
    py.mux.cork()
    for msg in outgoing:
        py.mux.send(hc, *encode_message(msg))
    py.flush(py.mux.uncork())
    py.cmd(
        op="send",
        name="hc",
        type=1,
        value={
            "id": 1,
            "fork": 0,
            "block": {"index": 2, "nodes": 0},
            "hash": None,
            "seek": None,
            "upgrade": None,
            "manifest": False,
            "priority": 1,
        },
    )
    js = py.settle()
    got = [(e["type"], e["body"]) for e in js if e["ev"] == "message"]
    assert got[0] == (
        0,
        {
            "fork": 0,
            "length": 3,
            "remoteLength": 0,
            "canUpgrade": True,
            "uploading": True,
            "downloading": True,
            "hasManifest": True,
            "allowPush": False,
        },
    )
    assert got[1] == (8, {"drop": False, "start": 0, "length": 3})
    assert got[2][1]["block"] == {
        "index": 0,
        "value": b"hello".hex(),
        "nodes": [{"index": 2, "size": 5, "hash": "99" * 32}],
    }
    assert got[3] == (7, {"start": 0, "bitfield": [0x80000001]})
    (req,) = [e for e in py.events if e["ev"] == "message"]
    assert decode_message(req["type"], req["body"]) == Request(1, 0, block=BlockRequest(2, 0), priority=1)
