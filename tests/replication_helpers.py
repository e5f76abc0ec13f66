"""Shared pieces of the replication tests: peer processes, Python nodes, waits and hostile peers.

* :class:`Processes` starts JS peers (``interop/peers/core_peer.js``) and Python peers
  (``tests/replication_peer.py``) as child processes that speak JSON lines, and kills every one
  of them when its ``async with`` block ends, whatever happened.
* :class:`Node` is an in-process Python peer: a Store, a Replication and the errors it reported.
* :class:`ScriptedPeer` drives a real :class:`ReplicationSession` over a connection while
  rewriting what it sends (forged blocks, broken proofs, made-up request ids), so a hostile peer
  speaks the protocol correctly except for the one thing under test.
* :func:`raw_secret_stream` does the Noise handshake by hand and hands back the raw socket, for
  attacks below the message layer (garbage, huge length prefixes).

Every wait is bounded; nothing binds or connects anywhere but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from conftest import INTEROP, ROOT, node_binary
from hyperlobby.core.hypercore import Hypercore
from hyperlobby.core.proofs import ProofRequest, UpgradeRequest
from hyperlobby.core.store import Store
from hyperlobby.crypto.keys import key_pair
from hyperlobby.errors import HyperlobbyError
from hyperlobby.wire.messages import Data, Message
from hyperlobby.wire.replication import Replication
from hyperlobby.wire.replicator import CoreReplicator, Peer, PeerTransport
from hyperlobby.wire.secret_stream import HandshakeComplete, SecretStream
from hyperlobby.wire.session import ReplicationSession
from hyperlobby.wire.stream import SecretStreamConnection, serve

HOST = "127.0.0.1"
PY_PEER = ROOT / "tests" / "replication_peer.py"
WAIT = 20.0  # generous upper bound for any single wait; tests normally finish far below it


# --- data ---------------------------------------------------------------------------------------


def make_blocks(n: int, tag: str = "b", *, start: int = 0) -> list[bytes]:
    """``n`` distinct deterministic blocks of varied sizes (1..400 bytes)."""
    out = []
    for i in range(start, start + n):
        seed = hashlib.sha256(f"{tag}:{i}".encode()).digest()
        size = 1 + seed[0] + seed[1] % 144
        out.append((seed * (size // 32 + 1))[:size])
    return out


def sha(block: bytes) -> str:
    return hashlib.sha256(block).hexdigest()


def seed_of(tag: str) -> bytes:
    return hashlib.sha256(tag.encode()).digest()


def new_writer(store: Store, compat: bool, tag: str = "writer") -> Hypercore:
    """A writable core: compat (key = public key) from a seeded key pair, or a named manifest core."""
    if compat:
        return Hypercore.create(store.storage, key_pair(seed_of(tag)), compat=True)
    return store.get(name=tag)


def stored_indexes(core: Hypercore) -> list[int]:
    return [i for i in range(core.length) if core.has(i)]


async def wait_until(pred: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``pred`` until true; fail the test (saying ``what``) after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_stored(core: Hypercore, indexes: range | list[int], timeout: float = WAIT) -> None:
    await wait_until(lambda: all(core.has(i) for i in indexes), f"blocks {indexes} stored", timeout)


# --- child processes ----------------------------------------------------------------------------


class Child:
    """A peer process that prints one JSON event per line and reads JSON commands on stdin."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.stderr_path = stderr_path
        self.events: list[dict[str, Any]] = []
        self._taken: set[int] = set()
        self._changed = asyncio.Event()
        self._eof = False
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                with contextlib.suppress(json.JSONDecodeError):
                    self.events.append(json.loads(line))
                self._changed.set()
        finally:
            self._eof = True
            self._changed.set()

    def stderr_tail(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def named(self, event: str) -> list[dict[str, Any]]:
        """Every event of this name seen so far (taken or not)."""
        return [e for e in self.events if e.get("event") == event]

    async def expect(
        self,
        event: str,
        *,
        timeout: float = WAIT,
        match: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The next event named ``event`` (and accepted by ``match``) not returned before."""

        async def find() -> dict[str, Any]:
            while True:
                for i, ev in enumerate(self.events):
                    if i not in self._taken and ev.get("event") == event and (match is None or match(ev)):
                        self._taken.add(i)
                        return ev
                if self._eof:
                    rc = await self.proc.wait()
                    pytest.fail(
                        f"{self.name} exited ({rc}) before sending {event!r}:\n"
                        f"events: {self.events[-5:]}\nstderr:\n{self.stderr_tail()}"
                    )
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            pytest.fail(
                f"{self.name}: no {event!r} event within {timeout}s\n"
                f"events: {self.events[-5:]}\nstderr:\n{self.stderr_tail()}"
            )

    async def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await asyncio.wait_for(self.proc.stdin.drain(), WAIT)

    async def append(self, core: int, blocks: list[bytes]) -> int:
        await self.send({"cmd": "append", "core": core, "blocks": [b.hex() for b in blocks]})
        ev = await self.expect("appended", match=lambda e: e["core"] == core)
        return int(ev["length"])

    async def kill(self) -> None:
        """SIGKILL (no chance to clean up) and reap."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), WAIT)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._reader, 5)

    async def wait_exit(self, timeout: float = WAIT) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            pytest.fail(f"{self.name} did not exit within {timeout}s\nstderr:\n{self.stderr_tail()}")


class Processes:
    """Starts peer processes; ``async with`` guarantees each one is killed and reaped."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.children: list[Child] = []

    async def __aenter__(self) -> Processes:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for child in self.children:
            await child.kill()

    async def _start(self, name: str, argv: list[str], cwd: Path) -> Child:
        stderr_path = self.tmp / f"{name}-{len(self.children)}.stderr"
        with stderr_path.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                limit=1 << 24,  # "done" lines list a digest per block
            )
        child = Child(name, proc, stderr_path)
        self.children.append(child)
        return child

    async def js(self, config: dict[str, Any]) -> Child:
        """``node peers/core_peer.js <config>``; stdin stays open (a serving peer exits when it closes)."""
        return await self._start("js", [node_binary(), "peers/core_peer.js", json.dumps(config)], INTEROP)

    async def py(self, config: dict[str, Any]) -> Child:
        """``python tests/replication_peer.py <config>`` (see that file)."""
        env_python = sys.executable
        return await self._start("py", [env_python, str(PY_PEER), json.dumps(config)], ROOT)

    async def js_serve(self, cores: list[dict[str, Any]]) -> tuple[Child, dict[str, Any]]:
        child = await self.js({"role": "serve", "port": 0, "cores": cores})
        return child, await child.expect("listening")

    async def py_serve(self, store: Path, cores: list[dict[str, Any]]) -> tuple[Child, dict[str, Any]]:
        child = await self.py({"store": str(store), "port": 0, "cores": cores})
        return child, await child.expect("listening")

    async def js_fetch(self, port: int, cores: list[dict[str, Any]]) -> Child:
        return await self.js({"role": "fetch", "port": port, "cores": cores})


def js_core_spec(tmp: Path, name: str, **spec: Any) -> dict[str, Any]:
    """A core entry for core_peer.js with its own storage directory under ``tmp``."""
    return {"storage": str(tmp / name), **spec}


def hexes(blocks: list[bytes]) -> list[str]:
    return [b.hex() for b in blocks]


# --- in-process Python peers --------------------------------------------------------------------


class Node:
    """A Python peer in this process: a Store, its Replication, and every fault it reported."""

    def __init__(self, store: Store | None = None, **options: Any) -> None:
        self.store = store if store is not None else Store(":memory:")
        self.errors: list[HyperlobbyError] = []
        self.rep = Replication(self.store, on_error=self.errors.append, **options)

    async def __aenter__(self) -> Node:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.wait_for(self.rep.close(), WAIT)
        self.store.close()

    async def listen(self) -> int:
        _host, port = await self.rep.listen(HOST, 0)
        return port

    async def connect(self, port: int) -> Any:
        return await asyncio.wait_for(self.rep.connect(HOST, port), WAIT)

    async def fetch_all(self, core: Hypercore, length: int | None = None) -> int:
        """Update to the peers' length and download every block; returns the length."""
        n = await self.rep.update(core, timeout=WAIT)
        if length is not None:
            await core.wait_for_length(length, timeout=WAIT)
            n = core.length
        self.rep.download(core, 0, n)
        await self.rep.wait_downloaded(core, n, timeout=WAIT)
        return n

    async def wait_error(self, what: str, timeout: float = WAIT) -> HyperlobbyError:
        await wait_until(lambda: bool(self.errors), what, timeout)
        return self.errors[0]


def requests_counter(monkeypatch: pytest.MonkeyPatch) -> dict[bytes, list[int]]:
    """Record every block request answered in this process: discovery key -> indexes, in order.

    Counts at the responder, so it proves what a reader asked for (not just what it kept).
    """
    seen: dict[bytes, list[int]] = {}
    original = Peer.on_request

    def on_request(self: Peer, msg: Any) -> None:
        if msg.block is not None:
            seen.setdefault(self.core.discovery_key, []).append(msg.block.index)
        original(self, msg)

    monkeypatch.setattr(Peer, "on_request", on_request)
    return seen


# --- hostile peers ------------------------------------------------------------------------------

Rewrite = Callable[[Message], Message | None]


class RewritingTransport:
    """Wraps a Peer's transport: every outgoing message passes through ``rewrite`` (None drops it)."""

    def __init__(self, inner: PeerTransport, rewrite: Rewrite) -> None:
        self.inner = inner
        self.rewrite = rewrite

    def send(self, message: Message) -> None:
        out = self.rewrite(message)
        if out is not None:
            self.inner.send(out)

    def cork(self) -> None:
        self.inner.cork()

    def uncork(self) -> None:
        self.inner.uncork()

    def close(self) -> None:
        self.inner.close()


class ScriptedPeer:
    """A peer that runs a real replication session over ``conn`` but rewrites what it sends.

    ``cores`` are offered on the connection (answering requests from them); nothing is
    downloaded. :meth:`run` returns once the remote ends the connection: None for a clean end,
    or the error that ended it.
    """

    def __init__(self, conn: SecretStreamConnection, cores: list[Hypercore], rewrite: Rewrite | None) -> None:
        self.conn = conn
        self.session = ReplicationSession(
            lambda _dk: None, is_initiator=conn.is_initiator, handshake_hash=conn.handshake_hash
        )
        self.replicators = [CoreReplicator(core) for core in cores]
        self.peers: list[Peer] = []
        for rep in self.replicators:
            peer = self.session.open(rep)
            if rewrite is not None:
                peer.transport = RewritingTransport(peer.transport, rewrite)
            self.peers.append(peer)

    async def _flush(self) -> None:
        for frame in self.session.data_to_send():
            await self.conn.send(frame)

    async def run(self, timeout: float = WAIT) -> HyperlobbyError | None:
        async def loop() -> HyperlobbyError | None:
            try:
                await self._flush()
                while (frame := await self.conn.recv()) is not None:
                    self.session.receive(frame)
                    await self._flush()
                return None
            except HyperlobbyError as err:
                return err

        try:
            return await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            pytest.fail(f"the honest peer did not close the hostile connection within {timeout}s")
        finally:
            self.session.close()
            self.conn.close()
            for rep in self.replicators:
                rep.close()


@asynccontextmanager
async def hostile_server(core: Hypercore, rewrite: Rewrite, wait: float = 8.0) -> AsyncIterator[int]:
    """Serve ``core`` on 127.0.0.1 from a :class:`ScriptedPeer` per connection; yields the port."""

    async def handler(conn: SecretStreamConnection) -> None:
        await ScriptedPeer(conn, [core], rewrite).run(wait)

    server = await serve(HOST, 0, None, handler)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), WAIT)


def forge_block(msg: Message) -> Message | None:
    """Every block answer carries other bytes of the same length (the proof nodes are genuine)."""
    if isinstance(msg, Data) and msg.block is not None:
        value = bytes(b ^ 0x5A for b in msg.block.value)
        return replace(msg, block=replace(msg.block, value=value))
    return msg


def break_proof(msg: Message) -> Message | None:
    """Every block answer's first sibling hash is wrong (the block bytes are genuine)."""
    if isinstance(msg, Data) and msg.block is not None and msg.block.nodes:
        first = msg.block.nodes[0]
        bad = replace(first, hash=hashlib.sha256(first.hash).digest())
        return replace(msg, block=replace(msg.block, nodes=(bad, *msg.block.nodes[1:])))
    return msg


def renumber_data(msg: Message) -> Message | None:
    """Every block answer names a request id the remote never used (a genuine proof, unsolicited)."""
    if isinstance(msg, Data) and msg.block is not None:
        return replace(msg, request=msg.request + 7777)
    return msg


def trust_length(reader: Hypercore, writer: Hypercore) -> None:
    """Give ``reader`` the writer's signed length (a verified upgrade proof), but no block."""
    proof = writer.proof(ProofRequest(fork=writer.fork, upgrade=UpgradeRequest(0, writer.length)))
    if reader.manifest is None and writer.manifest is not None and not writer.compat:
        reader.set_manifest(writer.manifest)
    reader.verify_and_store(proof)


async def raw_secret_stream(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, SecretStream]:
    """Connect, complete the Noise handshake by hand and send our id/header frame.

    Returns the raw socket pair: the next bytes written are read by the peer as encrypted
    messages (frames we make up, or garbage).
    """
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), WAIT)
    ss = SecretStream(True)
    writer.write(ss.initiate())

    async def shake() -> None:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                pytest.fail("the honest peer closed the connection during the handshake")
            events = ss.receive_data(chunk)
            writer.write(ss.data_to_send())  # Noise replies; after the last one, our header
            await writer.drain()
            if any(isinstance(e, HandshakeComplete) for e in events):
                return

    await asyncio.wait_for(shake(), WAIT)
    return reader, writer, ss


async def read_until_closed(reader: asyncio.StreamReader, timeout: float = WAIT) -> None:
    """Drain the socket until the peer closes it (fails the test if it stays open)."""

    async def drain() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(65536):
                pass

    try:
        await asyncio.wait_for(drain(), timeout)
    except TimeoutError:
        pytest.fail(f"the honest peer kept the hostile connection open for {timeout}s")


def random_bytes(n: int) -> bytes:
    return os.urandom(n)
