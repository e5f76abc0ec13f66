"""Hypercore replication as a sans-IO state machine, compatible with hypercore 11's replicator.

Theory of operation
-------------------
Two objects share the work:

* :class:`CoreReplicator`, one per core, knows what the local user wants (ranges to download,
  single blocks someone is waiting for, whether to follow the writer live) and decides which
  peer to ask for what. It keeps the set of blocks in flight so that two peers are never asked
  for the same block at once, and caps the requests in flight per peer so that a slow or
  silent peer cannot hold more than its share.
* :class:`Peer`, one per core per connection (one protomux channel), speaks the ten
  ``hypercore/alpha`` messages with one remote. It answers the remote's requests from local
  storage and checks everything the remote sends against what we already trust.

Neither object touches a socket or a clock. A peer hands outgoing messages to a
:class:`PeerTransport` (the connection glue encodes them into protomux frames), and time enters
through :meth:`CoreReplicator.tick` so request timeouts can be tested without sleeping.

The exchange follows the JS peer closely, because a JS peer only fetches from us when our
``sync`` says the right things:

1. When both sides have opened the channel, each sends ``sync`` (its fork and length, the
   length it last heard from the other, and ``can_upgrade``) and, if it has a contiguous
   prefix, ``range{0, contiguous}``.
2. A side that learns the other is longer (same fork, and the other has acknowledged our
   length and says it can prove the upgrade) asks for a signed **upgrade**. A side that is
   longer than the other re-sends ``sync`` so that the other learns it.
3. Blocks are requested only from peers that announced them (``range``/``bitfield``); for
   blocks nobody announced, we ``want`` the 2^21-block segment holding them.
4. Every ``data`` is matched to the request it answers and verified by the core
   (:meth:`~hyperlobby.core.hypercore.Hypercore.verify_and_store`): a proof that fails is a
   hostile or broken peer, and the connection is closed with a :class:`ProtocolError`. Nothing
   unverified is ever stored.
5. After storing a block we tell the other peers with ``range{i, 1}`` unless they have it; when
   the core grows (our append, or a verified upgrade) every peer gets a fresh ``sync``.

6. **Reorgs** (hypercore.md §8). A peer whose ``sync`` shows a higher fork has truncated (or
   follows a writer that did). We ask it for its whole signed tree on that fork
   (``upgrade{0, length}`` with ``fork`` = its fork), verify it, narrow down where it parts from
   ours with ``hash`` requests (as JS does, so untouched blocks are kept), then cut our core back
   and adopt the new fork in one transaction. Requests still in flight for the old fork are
   withdrawn, the range cursors restart, and every peer gets our new ``sync`` (and a ``range``
   drop for the blocks that are gone), which is how peers still on the old fork learn of it.

7. **Writer equivocation** (JS's conflict check). When a peer's data on our fork fails to
   verify and both sides have blocks, the peer may be honest and the *writer* at fault: it
   signed another tree at a length we hold. So instead of hanging up at once we stop asking that
   peer for anything and send it request id 0, an upgrade from 0 to the shorter length. Its
   answer (or a proof pushed with id 0 by a peer that found a conflict itself) goes to
   :meth:`~hyperlobby.core.hypercore.Hypercore.check_conflict`: a valid signature over a tree
   other than ours freezes the core, every peer gets our own signed tree with id 0 (so JS peers
   freeze too) and its channel is closed, and the application hears a :class:`ConflictError`.
   No conflict (or a ``no_data``) means the peer was simply wrong: the connection is closed with
   the original verification error. A peer that never answers has its channel closed after the
   request timeout, and the error is reported then.

Not implemented yet: pushing unrequested data and seek-driven downloads.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hyperlobby.core.hypercore import AppendEvent, Hypercore
from hyperlobby.core.merkle import ReorgBatch
from hyperlobby.core.proofs import (
    BlockRequest,
    HashRequest,
    Proof,
    ProofRequest,
    UpgradeRequest,
    record_builder,
)
from hyperlobby.crypto.caps import replication_capability
from hyperlobby.crypto.manifest import Manifest
from hyperlobby.errors import (
    BlockNotAvailableError,
    ConflictError,
    DecodeError,
    HyperlobbyError,
    ProtocolError,
    VerificationError,
)
from hyperlobby.wire.messages import (
    INVALID_REQUEST,
    NOT_AVAILABLE,
    Bitfield,
    Cancel,
    Data,
    Extension,
    Handshake,
    Message,
    NoData,
    Range,
    Request,
    Sync,
    Unwant,
    Want,
)

_log = logging.getLogger(__name__)

SEGMENT_BLOCKS = 1 << 21  # the unit of a `want` (hypercore.md §7)
PAGE_BITS = 32768  # bits per `bitfield` message when answering a want
LAST_BLOCKS = 256  # newer blocks are announced to every peer, older ones only if wanted
# Fast positional constructors for the records built per block (see record_builder).
_request = record_builder(Request)
_block_request = record_builder(BlockRequest)
_proof = record_builder(Proof)

MAX_INVALID_REQUESTS = 64  # malformed requests tolerated from one peer before we hang up
DEFAULT_MAX_INFLIGHT = 128  # block requests in flight per peer
DEFAULT_REQUEST_TIMEOUT = 20.0  # seconds before a request is cancelled and re-asked elsewhere
MAX_TRACKED_BLOCK = 1 << 32  # remote availability beyond this is ignored (bounded memory)
MAX_RETRY = 4096  # blocks waiting for a source; the range cursors pause while this is full
MAX_REORG_PROBE = 4096  # blocks looked at per peer when choosing where to narrow a reorg

_SENT, _BUSY, _NOBODY = 0, 1, 2  # outcomes of asking for one block


class PeerTransport(Protocol):
    """What a :class:`Peer` needs from its channel: send a message, batch, hang up."""

    def send(self, message: Message) -> None: ...

    def cork(self) -> None: ...

    def uncork(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DownloadRange:
    """Blocks ``[start, end)`` to fetch; ``end=None`` means everything, following the writer live."""

    start: int
    end: int | None


@dataclass(slots=True)
class _Inflight:
    """A request we sent and have not had an answer to."""

    id: int
    peer: Peer
    request: Request
    sent_at: float


@dataclass(slots=True)
class _Reorg:
    """A newer fork we are moving to: its verified tree (once it arrived) and the one request
    (the tree itself, then hash proofs narrowing the divergence) we have out for it."""

    fork: int
    batch: ReorgBatch | None = None
    inflight: _Inflight | None = None


class _Availability:
    """What a remote says it has: a contiguous prefix plus a sparse bitmap after it."""

    __slots__ = ("bits", "contiguous")

    def __init__(self) -> None:
        self.contiguous = 0
        self.bits = bytearray()

    def has(self, index: int) -> bool:
        if index < self.contiguous:
            return True
        byte = index >> 3
        return byte < len(self.bits) and bool(self.bits[byte] & (1 << (index & 7)))

    def set_range(self, start: int, end: int, value: bool) -> None:
        end = min(end, MAX_TRACKED_BLOCK)
        if start >= end:
            return
        if value:
            need = (end + 7) >> 3
            if len(self.bits) < need:
                self.bits.extend(bytes(need - len(self.bits)))
        bits = self.bits
        limit = len(bits) << 3
        for i in range(start, min(end, limit)):
            if value:
                bits[i >> 3] |= 1 << (i & 7)
            else:
                bits[i >> 3] &= ~(1 << (i & 7)) & 0xFF

    def set_words(self, start: int, words: tuple[int, ...]) -> None:
        if start >= MAX_TRACKED_BLOCK or start % 8:
            return
        end = min(start + 32 * len(words), MAX_TRACKED_BLOCK)
        need = (end + 7) >> 3
        if len(self.bits) < need:
            self.bits.extend(bytes(need - len(self.bits)))
        offset = start >> 3
        raw = b"".join(w.to_bytes(4, "little") for w in words)[: need - offset]
        self.bits[offset : offset + len(raw)] = raw


class CoreReplicator:
    """Replication state of one core across all the connections it is replicated on."""

    def __init__(
        self,
        core: Hypercore,
        *,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[HyperlobbyError], None] | None = None,
    ) -> None:
        self.core = core
        self.clock = clock
        self.on_error = on_error  # faults found outside a message handler (a probe timing out)
        self.peers: list[Peer] = []
        self.max_inflight = max_inflight
        self.request_timeout = request_timeout
        self.ranges: list[DownloadRange] = []
        self._wanted_blocks: dict[int, int] = {}  # index -> number of waiters
        self._inflight_blocks: dict[int, _Inflight] = {}
        self._upgrade: _Inflight | None = None
        self._reorg: _Reorg | None = None
        self._block_listeners: list[Callable[[int], None]] = []
        self._extensions: dict[str, Callable[[Peer, bytes], None]] = {}
        self._unsubscribe = core.on_append(self._on_core_changed)
        self._cursor: dict[int, int] = {}  # range id -> next block index to consider
        self._retry: set[int] = set()  # wanted blocks that could not be requested yet
        self._retry_dirty = False
        self.closed = False

    # --- what the user wants -------------------------------------------------------------------

    def download(self, start: int = 0, end: int | None = None) -> DownloadRange:
        """Fetch blocks ``[start, end)`` (``end=None``: all, and keep following the writer)."""
        r = DownloadRange(start, end)
        self.ranges.append(r)
        self.schedule()
        return r

    def undownload(self, r: DownloadRange) -> None:
        if r in self.ranges:
            self.ranges.remove(r)
            self._cursor.pop(id(r), None)

    def want_block(self, index: int) -> None:
        """Someone waits for block ``index``: fetch it even if no range covers it."""
        self._wanted_blocks[index] = self._wanted_blocks.get(index, 0) + 1
        self.schedule()

    def unwant_block(self, index: int) -> None:
        n = self._wanted_blocks.get(index, 0) - 1
        if n <= 0:
            self._wanted_blocks.pop(index, None)
        else:
            self._wanted_blocks[index] = n

    def on_block(self, listener: Callable[[int], None]) -> Callable[[], None]:
        """Call ``listener(index)`` after each block downloaded and stored; returns an unsubscriber."""
        self._block_listeners.append(listener)
        return lambda: self._block_listeners.remove(listener) if listener in self._block_listeners else None

    def register_extension(self, name: str, handler: Callable[[Peer, bytes], None]) -> None:
        self._extensions[name] = handler

    @property
    def reorg_pending(self) -> bool:
        """True while we are moving to a newer fork a peer showed (its tree asked for or being
        narrowed down): until then our length is the old fork's, whatever the peers say."""
        return self._reorg is not None

    def remote_length(self) -> int:
        """The longest length any peer on our fork has told us about."""
        fork = self.core.fork
        return max((p.remote_length for p in self.peers if p.remote_fork == fork), default=0)

    # --- peers ---------------------------------------------------------------------------------

    def add_peer(self, peer: Peer) -> None:
        if peer not in self.peers:
            self.peers.append(peer)

    def remove_peer(self, peer: Peer) -> None:
        if peer in self.peers:
            self.peers.remove(peer)
        for index, inflight in list(self._inflight_blocks.items()):
            if inflight.peer is peer:
                del self._inflight_blocks[index]
                self._failed(index)
        if self._upgrade is not None and self._upgrade.peer is peer:
            self._upgrade = None
        if self._reorg is not None and self._reorg.inflight is not None and self._reorg.inflight.peer is peer:
            self._reorg.inflight = None
        peer.inflight.clear()
        self.schedule()

    def close(self) -> None:
        self.closed = True
        self._unsubscribe()
        for peer in list(self.peers):
            peer.transport.close()
        self.peers.clear()

    # --- time ----------------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> None:
        """Check the time: requests older than the timeout are cancelled and asked again."""
        if now is None:
            now = self.clock()
        deadline = now - self.request_timeout
        expired = [r for p in self.peers for r in p.inflight.values() if r.sent_at < deadline]
        for r in expired:
            r.peer.cancel(r)
        for peer in [p for p in self.peers if p.probe is not None and p.probe[1] < deadline]:
            peer.give_up_probe()
        if expired:
            self.schedule()

    def _on_conflict(self) -> None:
        """The core just froze: show every peer our signed tree (request id 0, as JS does, so a
        JS peer checks it and freezes too), then close every channel of this core."""
        core = self.core
        for peer in list(self.peers):
            if peer.active and peer.remote_length > 0 and peer.remote_fork == core.fork:
                length = min(core.length, peer.remote_length)
                with contextlib.suppress(HyperlobbyError):  # roots we lack: nothing to show
                    proof = core.proof(ProofRequest(fork=core.fork, upgrade=UpgradeRequest(0, length)))
                    peer.transport.send(Data(request=0, fork=core.fork, upgrade=proof.upgrade))
            peer.paused = True
            peer.transport.close()
        if self.on_error is not None:
            self.on_error(
                ConflictError(
                    "the writer signed two conflicting trees: core frozen",
                    key=core.key,
                    length=core.frozen_length,
                )
            )

    # --- local changes -------------------------------------------------------------------------

    def _on_core_changed(self, event: AppendEvent) -> None:
        # Like JS (onupgrade, then onhave): a core that holds every block (a writer after an
        # append) also tells each peer it has them, or readers never learn of the new blocks.
        if event.truncated:
            self._on_truncated(event)
        full = self.core.length > 0 and self.core.contiguous_length == self.core.length
        for peer in list(self.peers):
            peer.signal_upgrade()
            if full:
                peer.announce_block(self.core.length - 1)
        self.schedule()  # also looks for peers on an even newer fork (JS re-runs _updateFork)

    def _on_truncated(self, event: AppendEvent) -> None:
        """Our core moved to a new fork (our own truncate, or a reorg we applied).

        Requests for the old fork can only be answered with data we would now refuse, so they
        are withdrawn (their ids are not reused, late answers are ignored) and their blocks asked
        for again on the new fork. The range cursors restart because blocks they had passed may
        be gone, and per-peer "not available" marks are forgotten: they were about the old fork.
        Like JS (``ontruncate`` then ``onhave(drop)``), peers hear which blocks we no longer hold.
        """
        self._cursor.clear()
        self._retry_dirty = True
        reorg = self._reorg
        if reorg is not None and reorg.fork <= event.fork:
            self._reorg = None
            if reorg.inflight is not None:
                reorg.inflight.peer.cancel(reorg.inflight)
        for peer in list(self.peers):
            for inflight in list(peer.inflight.values()):
                if inflight.request.fork < event.fork:
                    peer.cancel(inflight, lacks=False)
            peer.lacks.clear()
            peer.local_truncated(event.ancestors, event.dropped)

    # --- reorgs --------------------------------------------------------------------------------

    def _update_fork(self, peer: Peer) -> None:
        """``peer`` may be on a newer fork than we are: go after it (see :meth:`_pursue_reorg`)."""
        if peer.usable and peer.remote_fork > self.core.fork:
            self._pursue_reorg()

    def _pursue_reorg(self) -> None:
        """Ask a peer on a newer fork for that fork's whole signed tree, if nothing is under way.

        One reorg is pursued at a time, normally for the newest fork a peer showed. A claim
        nobody has verified yet is not allowed to block the others, though: a peer that says
        "fork 2^60" and then cannot (or will not) prove it is asked once per claim, and once
        that request fails or times out, the next candidate (perhaps an honest, lower fork) gets
        its turn. A verified tree is finished first (JS applies the verified one it has too);
        after it is applied, newer forks are looked at again. Like JS, an empty newer fork is
        not followed (there is no ``upgrade{0, 0}`` to ask for).
        """
        if self.closed:
            return
        core = self.core
        candidates = [
            p
            for p in self.peers
            if p.usable
            and p.remote_fork > core.fork
            and p.remote_length > 0
            and p.fork_asked != p.remote_fork
        ]
        if not candidates:
            return
        best = max(candidates, key=lambda p: p.remote_fork)
        reorg = self._reorg
        if reorg is not None:
            if reorg.batch is not None or (reorg.inflight is not None and best.remote_fork <= reorg.fork):
                return
            if reorg.inflight is not None:
                reorg.inflight.peer.cancel(reorg.inflight)
        best.fork_asked = best.remote_fork
        reorg = self._reorg = _Reorg(best.remote_fork)
        reorg.inflight = best.request(
            upgrade=UpgradeRequest(0, best.remote_length),
            manifest=core.manifest is None,
            fork=reorg.fork,
        )

    def _narrow_reorg(self) -> None:
        """Ask one peer on the new fork for the next hash proof towards the divergence point."""
        reorg = self._reorg
        if reorg is None or reorg.batch is None or reorg.inflight is not None or reorg.batch.finished:
            return
        batch = reorg.batch
        for peer in self.peers:
            if not peer.usable or peer.remote_fork != reorg.fork or len(peer.inflight) >= self.max_inflight:
                continue
            # Any block of the range will do; look at a bounded number of candidates per peer.
            end = min(batch.want_end, peer.remote_length, batch.want_start + MAX_REORG_PROBE)
            for index in range(batch.want_start, end):
                if peer.remote.has(index) and index not in peer.lacks:
                    hash_request = HashRequest(2 * index, batch.want_nodes)
                    reorg.inflight = peer.request(hash=hash_request, fork=reorg.fork)
                    return
        for peer in self.peers:
            if peer.usable and peer.remote_fork == reorg.fork:
                peer.want_segment(batch.want_start)

    def _on_reorg_data(self, peer: Peer, req: Request, msg: Data) -> None:
        """Data for a newer fork: the tree we asked for, or a hash proof narrowing it down."""
        reorg = self._reorg
        if reorg is None or msg.fork != reorg.fork or req.fork != msg.fork:
            return  # for a fork we gave up on (a newer one turned up, or we got there already)
        core = self.core
        batch = reorg.batch
        if batch is not None and (batch.base_fork != core.fork or batch.base_length != core.length):
            # Our core grew on the old fork meanwhile: the batch compared against a tree we no
            # longer have. Start this fork over (JS drops its reorgs for the same reason).
            self._reorg = None
            peer.fork_asked = -1
            self._pursue_reorg()
            return
        proof = Proof(fork=msg.fork, block=msg.block, hash=msg.hash, seek=msg.seek, upgrade=msg.upgrade)
        try:
            if reorg.batch is None:
                if msg.upgrade is None:
                    return
                reorg.batch = core.verify_reorg(proof)
            elif msg.hash is not None:
                reorg.batch.update(proof)
            else:
                return
        except VerificationError as exc:
            raise ProtocolError(
                "peer sent a newer fork that does not verify", key=core.key, reason=str(exc)
            ) from exc
        if reorg.batch.finished:
            self._reorg = None
            core.reorg(reorg.batch)  # listeners (_on_core_changed) do the rest

    def _stored_block(self, index: int, source: Peer) -> None:
        for peer in self.peers:
            if peer is not source:
                peer.announce_block(index)
        for listener in list(self._block_listeners):
            try:
                listener(index)
            except Exception:
                _log.exception("block listener failed")

    # --- scheduling ----------------------------------------------------------------------------

    def schedule(self) -> None:
        """Send whatever requests the current wants and peer states allow.

        Cost is proportional to the requests sent, not to the blocks in flight: each range keeps
        a cursor of the next block to consider, and blocks that could not be asked for (nobody
        has them yet, or a request failed) wait in a small retry set that is re-examined only
        when a peer's availability changes.
        """
        if self.closed or not self.peers:
            return
        self._pursue_reorg()
        self._narrow_reorg()
        self._maybe_upgrade()
        capacity = sum(self.max_inflight - len(p.inflight) for p in self.peers if p.usable)
        if capacity <= 0:
            return
        # Requests sent in one pass go out as one protomux batch per connection: one frame to
        # encrypt instead of dozens, and JS answers a batch with a batch.
        corked = [p.transport for p in self.peers if p.active]
        for transport in corked:
            transport.cork()
        try:
            self._schedule_blocks(capacity)
        finally:
            for transport in corked:
                transport.uncork()

    def _schedule_blocks(self, capacity: int) -> None:
        core = self.core
        length = core.length
        for index in list(self._wanted_blocks):
            if core.has(index):
                self._wanted_blocks.pop(index, None)
            elif (
                index < length and index not in self._inflight_blocks and self._request_block(index) == _SENT
            ):
                capacity -= 1
        if self._retry_dirty and self._retry:
            self._retry_dirty = False
            for index in sorted(self._retry):
                if capacity <= 0:
                    return
                if core.has(index) or index >= length or index in self._inflight_blocks:
                    self._retry.discard(index)
                    continue
                outcome = self._request_block(index)
                if outcome == _SENT:
                    self._retry.discard(index)
                    capacity -= 1
                elif outcome == _BUSY:
                    return
        for r in self.ranges:
            end = length if r.end is None else min(r.end, length)
            key = id(r)
            i = max(self._cursor.get(key, r.start), r.start)
            while i < end and capacity > 0:
                if not core.has(i) and i not in self._inflight_blocks:
                    outcome = self._request_block(i)
                    if outcome == _SENT:
                        capacity -= 1
                    elif outcome == _BUSY:
                        break
                    else:
                        if len(self._retry) >= MAX_RETRY:
                            break
                        self._retry.add(i)
                i += 1
            self._cursor[key] = i

    def _request_block(self, index: int) -> int:
        """Ask the least busy peer that has block ``index``; say whether it was sent, or why not."""
        fork = self.core.fork
        best: Peer | None = None
        busy = False
        for peer in self.peers:
            if not peer.usable or peer.remote_fork != fork:
                continue
            if index >= peer.remote_length or not peer.remote.has(index) or index in peer.lacks:
                continue
            if len(peer.inflight) >= self.max_inflight:
                busy = True
                continue
            if best is None or len(peer.inflight) < len(best.inflight):
                best = peer
        if best is None:
            if busy:
                return _BUSY
            for peer in self.peers:
                if peer.usable and peer.remote_fork == fork:
                    peer.want_segment(index)
            return _NOBODY
        nodes = self.core.missing_nodes(index)
        inflight = best.request(
            block=_block_request(index, nodes), priority=1 if index in self._wanted_blocks else 0
        )
        self._inflight_blocks[index] = inflight
        return _SENT

    def availability_changed(self) -> None:
        """A peer announced new blocks or a new length: blocks waiting for a source may have one."""
        self._retry_dirty = True
        self.schedule()

    def _failed(self, index: int) -> None:
        """A request for ``index`` failed or was withdrawn: try it again (elsewhere) later."""
        if not self.core.has(index) and len(self._retry) < MAX_RETRY:
            self._retry.add(index)
            self._retry_dirty = True

    def _maybe_upgrade(self) -> None:
        if self._upgrade is not None:
            return
        core = self.core
        for peer in self.peers:
            if not peer.usable or peer.remote_fork != core.fork:
                continue
            if (
                peer.remote_length > core.length
                and peer.length_acked == core.length
                and peer.remote_can_upgrade
            ):
                want_manifest = core.manifest is None and peer.remote_has_manifest
                self._upgrade = peer.request(
                    upgrade=UpgradeRequest(core.length, peer.remote_length - core.length),
                    manifest=want_manifest,
                )
                return
            if core.manifest is None and peer.remote_has_manifest and not peer.asked_manifest:
                peer.asked_manifest = True
                self._upgrade = peer.request(manifest=True)
                return

    def _request_done(self, inflight: _Inflight) -> None:
        req = inflight.request
        if req.block is not None:
            current = self._inflight_blocks.get(req.block.index)
            if current is inflight:
                del self._inflight_blocks[req.block.index]
        if self._upgrade is inflight:
            self._upgrade = None
        reorg = self._reorg
        if reorg is not None and reorg.inflight is inflight:
            reorg.inflight = None


class Peer:
    """One core replicated with one remote over one channel."""

    def __init__(
        self,
        replicator: CoreReplicator,
        transport: PeerTransport,
        *,
        is_initiator: bool,
        handshake_hash: bytes,
    ) -> None:
        self.replicator = replicator
        self.core = replicator.core
        self.transport = transport
        self.is_initiator = is_initiator
        self.handshake_hash = handshake_hash
        self.active = False  # both opens seen and the remote capability checked
        self.paused = False  # sent data that did not verify: asked for nothing more (see probe)
        self.probe: tuple[ProtocolError, float] | None = None  # (the fault, when we asked)

        self.remote_fork = 0
        self.remote_length = 0
        self.remote_can_upgrade = False
        self.remote_has_manifest = False
        self.remote_downloading = True
        self.remote_synced = False
        self.length_acked = 0
        self.can_upgrade = True  # what our sync says; JS starts with true as well
        self.remote = _Availability()
        self.lacks: set[int] = set()  # blocks this peer answered "not available" for
        self.asked_manifest = False
        self.fork_asked = -1  # the newer fork whose signed tree we last asked this peer for

        self.inflight: dict[int, _Inflight] = {}
        self._next_id = 1
        self._free_ids: list[int] = []
        self._wanted_segments: set[int] = set()
        self._remote_wants: set[int] = set()
        self._invalid_requests = 0
        self._last_ext_sent = ""
        self._last_ext_recv = ""
        self._announced_full = 0

    @property
    def usable(self) -> bool:
        """May we ask this peer for anything? (open, not paused, our core not frozen)"""
        return self.active and not self.paused and not self.core.frozen

    # --- the channel handshake ------------------------------------------------------------------

    def local_handshake(self) -> Handshake:
        """Our open payload: we support seeks, and prove we know the key for this session."""
        cap = replication_capability(self.core.key, self.handshake_hash, self.is_initiator)
        return Handshake(capability=cap, seeks=True)

    def on_open(self, remote: Handshake) -> None:
        """Both opens are seen: check the remote's capability, then say where we stand."""
        expected = replication_capability(self.core.key, self.handshake_hash, not self.is_initiator)
        if remote.capability != expected:
            raise ProtocolError("remote sent an invalid replication capability", key=self.core.key)
        if self.active:
            return
        self.active = True
        self.transport.cork()
        try:
            self.send_sync()
            contig = self.core.contiguous_length
            if contig > 0:
                self.transport.send(Range(0, contig))
                if contig == self.core.length:
                    self._announced_full = contig
        finally:
            self.transport.uncork()
        self.replicator.add_peer(self)
        self.replicator.availability_changed()

    def on_close(self) -> None:
        self.active = False
        self.replicator.remove_peer(self)

    # --- outgoing ------------------------------------------------------------------------------

    def send_sync(self) -> None:
        core = self.core
        if core.fork != self.remote_fork:
            self.can_upgrade = False
        self.transport.send(
            Sync(
                fork=core.fork,
                length=core.length,
                remote_length=self.remote_length if core.fork == self.remote_fork else 0,
                can_upgrade=self.can_upgrade,
                uploading=True,
                downloading=True,
                has_manifest=core.manifest is not None and not core.compat,
                allow_push=False,
            )
        )

    def signal_upgrade(self) -> None:
        """Our core changed: tell the remote (recomputing whether we can prove its upgrade)."""
        if not self.active:
            return
        core = self.core
        if core.fork == self.remote_fork and core.length > self.remote_length and not self.can_upgrade:
            can = self._compute_can_upgrade(self.remote_length, self.remote_fork)
            if can == self.can_upgrade:
                return
            self.can_upgrade = can
        self.send_sync()

    def announce_block(self, index: int) -> None:
        """Tell the remote we now hold block ``index``, unless it has it or does not care."""
        if not self.active:
            return
        core = self.core
        contig = core.contiguous_length
        if contig == core.length and contig > self._announced_full:
            self._announced_full = contig
            self.transport.send(Range(0, contig))
            return
        if index + LAST_BLOCKS < core.length and (index // SEGMENT_BLOCKS) not in self._remote_wants:
            return
        if self.remote.has(index):
            return
        self.transport.send(Range(index, 1))

    def request(
        self,
        *,
        block: BlockRequest | None = None,
        hash: HashRequest | None = None,
        upgrade: UpgradeRequest | None = None,
        manifest: bool = False,
        priority: int = 0,
        fork: int | None = None,
    ) -> _Inflight:
        rid = self._free_ids.pop() if self._free_ids else self._take_id()
        if fork is None:
            fork = self.remote_fork if upgrade is not None else self.core.fork
        msg = _request(rid, fork, block, hash, None, upgrade, manifest, priority)
        inflight = _Inflight(rid, self, msg, self.replicator.clock())
        self.inflight[rid] = inflight
        self.transport.send(msg)
        return inflight

    def _take_id(self) -> int:
        rid = self._next_id
        self._next_id += 1
        return rid

    def _finish(self, inflight: _Inflight) -> None:
        if self.inflight.pop(inflight.id, None) is not None:
            self._free_ids.append(inflight.id)
        self.replicator._request_done(inflight)

    def cancel(self, inflight: _Inflight, *, lacks: bool = True) -> None:
        """Withdraw a request that took too long or went stale (the id is not reused until much
        later). ``lacks`` marks the block as one this peer seems not to have (a timeout); a
        request withdrawn because our fork changed says nothing about the peer."""
        self.inflight.pop(inflight.id, None)
        self.replicator._request_done(inflight)
        if inflight.request.block is not None:
            if lacks:
                self.lacks.add(inflight.request.block.index)
            self.replicator._failed(inflight.request.block.index)
        if self.active:
            self.transport.send(Cancel(inflight.id))

    def local_truncated(self, ancestors: int, dropped: int) -> None:
        """Our core dropped blocks ``[ancestors, ancestors + dropped)``: say so (JS sends the same
        ``range`` drop), and announce the full core again once it is whole."""
        self._announced_full = min(self._announced_full, ancestors)
        if self.active and dropped > 0:
            self.transport.send(Range(ancestors, dropped, drop=True))

    def want_segment(self, index: int) -> None:
        segment = index // SEGMENT_BLOCKS
        if segment in self._wanted_segments or index < self.remote.contiguous:
            return
        self._wanted_segments.add(segment)
        self.transport.send(Want(segment * SEGMENT_BLOCKS, SEGMENT_BLOCKS))

    def send_extension(self, name: str, payload: bytes) -> None:
        self.transport.send(Extension("" if name == self._last_ext_sent else name, payload))
        self._last_ext_sent = name

    # --- incoming ------------------------------------------------------------------------------

    def on_message(self, msg: Message) -> None:
        """Handle one decoded message from the remote (only after :meth:`on_open`)."""
        if isinstance(msg, Sync):
            self.on_sync(msg)
        elif isinstance(msg, Request):
            self.on_request(msg)
        elif isinstance(msg, Data):
            self.on_data(msg)
        elif isinstance(msg, NoData):
            self.on_no_data(msg)
        elif isinstance(msg, Range):
            self.on_range(msg)
        elif isinstance(msg, Bitfield):
            self.on_bitfield(msg)
        elif isinstance(msg, Want):
            self.on_want(msg)
        elif isinstance(msg, Unwant):
            self._remote_wants.discard(msg.start // SEGMENT_BLOCKS)
        elif isinstance(msg, Cancel):
            pass  # we answer requests synchronously, so there is never anything left to cancel
        elif isinstance(msg, Extension):
            self.on_extension(msg)

    def on_sync(self, msg: Sync) -> None:
        core = self.core
        length_changed = msg.length != self.remote_length
        same_fork = msg.fork == core.fork
        self.remote_synced = True
        self.remote_fork = msg.fork
        self.remote_length = msg.length
        self.remote_can_upgrade = msg.can_upgrade
        self.remote_has_manifest = msg.has_manifest
        self.remote_downloading = msg.downloading
        self.length_acked = msg.remote_length if same_fork else 0
        if length_changed:
            self.fork_asked = -1  # a new claim: worth asking about once more
        if length_changed or not same_fork:
            self.can_upgrade = self._compute_can_upgrade(msg.length, msg.fork)
        elif not same_fork:
            self.can_upgrade = False
        self.replicator._update_fork(self)
        if same_fork and core.length > self.remote_length:
            self.send_sync()
        if length_changed:
            self.replicator.availability_changed()
        else:
            self.replicator.schedule()

    def _compute_can_upgrade(self, remote_length: int, remote_fork: int) -> bool:
        core = self.core
        if remote_fork != core.fork:
            return False
        if remote_length == 0:
            return True
        if remote_length >= core.length:
            return False
        try:
            core.proof(
                ProofRequest(
                    fork=core.fork, upgrade=UpgradeRequest(remote_length, core.length - remote_length)
                )
            )
        except HyperlobbyError:
            return False
        return True

    def on_request(self, msg: Request) -> None:
        core = self.core
        manifest_bytes = (
            core.manifest.encode() if msg.manifest and core.manifest is not None and not core.compat else None
        )
        unavailable = msg.fork != core.fork or (msg.block is not None and not core.has(msg.block.index))
        if not unavailable and (msg.block or msg.hash or msg.seek or msg.upgrade):
            try:
                proof = core.proof(
                    ProofRequest(
                        fork=msg.fork, block=msg.block, hash=msg.hash, seek=msg.seek, upgrade=msg.upgrade
                    )
                )
            except BlockNotAvailableError:
                unavailable = True
            except HyperlobbyError as exc:
                self._invalid_requests += 1
                if self._invalid_requests > MAX_INVALID_REQUESTS:
                    raise ProtocolError("peer keeps sending invalid requests", key=core.key) from exc
                self.transport.send(NoData(msg.id, INVALID_REQUEST))
                return
            else:
                self.transport.send(
                    Data(
                        request=msg.id,
                        fork=msg.fork,
                        block=proof.block,
                        hash=proof.hash,
                        seek=proof.seek,
                        upgrade=proof.upgrade,
                        manifest=manifest_bytes,
                    )
                )
                return
        if manifest_bytes is not None:
            self.transport.send(Data(request=msg.id, fork=core.fork, manifest=manifest_bytes))
            return
        self.transport.send(NoData(msg.id, NOT_AVAILABLE))

    def on_data(self, msg: Data) -> None:
        if msg.request == 0:
            self._on_tree_proof(msg)
            return
        inflight = self.inflight.get(msg.request)
        if inflight is None:
            if msg.request >= self._next_id:
                raise ProtocolError("peer sent data for a request we never made", request=msg.request)
            return  # answered after we cancelled it (we do not accept pushes)
        req = inflight.request
        self._finish(inflight)
        try:
            self._on_answer(req, msg)
        finally:
            # A block this answer did not deliver (bad proof, wrong fork, ...) is wanted again:
            # the range cursors have moved past it, so without this it would never be re-asked.
            if req.block is not None and not self.core.has(req.block.index):
                self.replicator._failed(req.block.index)

    def _on_answer(self, req: Request, msg: Data) -> None:
        if not _matches(req, msg):
            raise ProtocolError("peer answered a request with data for something else", request=msg.request)
        core = self.core
        if msg.manifest is not None and core.manifest is None:
            try:
                core.set_manifest(Manifest.decode(msg.manifest))
            except (DecodeError, VerificationError) as exc:
                raise ProtocolError(
                    "peer sent a manifest that does not match the core key", key=core.key
                ) from exc
        if msg.block is None and msg.hash is None and msg.seek is None and msg.upgrade is None:
            self.replicator.schedule()
            return
        if msg.fork > core.fork:
            self.replicator._on_reorg_data(self, req, msg)
            self.replicator.schedule()
            return
        if msg.fork != core.fork:
            # An older fork: an answer to a request from before we moved on. Useless now.
            self.replicator.schedule()
            return
        proof = _proof(msg.fork, msg.block, msg.hash, msg.seek, msg.upgrade)
        try:
            update = core.verify_and_store(proof)
        except VerificationError as exc:
            error = ProtocolError("peer sent data that does not verify", key=core.key, reason=str(exc))
            if not self._start_probe(error):
                raise error from exc
            return
        if update.block is not None:
            self.replicator._stored_block(update.block.index, self)
        self.replicator.schedule()

    # --- writer equivocation (see the module docstring, 7) ---------------------------------------

    def _start_probe(self, error: ProtocolError) -> bool:
        """Data on our fork failed to verify: ask for the peer's whole signed tree before hanging
        up, in case the writer, not the peer, is at fault. False when there is nothing to compare
        (then the caller hangs up at once)."""
        core = self.core
        length = min(core.length, self.remote_length)
        if self.probe is not None or length == 0 or self.remote_fork != core.fork or core.manifest is None:
            return False
        self.paused = True
        for inflight in list(self.inflight.values()):
            self.cancel(inflight, lacks=False)
        self.probe = (error, self.replicator.clock())
        self.transport.send(
            _request(0, self.remote_fork, None, None, None, UpgradeRequest(0, length), False, 0)
        )
        self.replicator.schedule()  # what it was fetching from this peer is asked elsewhere
        return True

    def give_up_probe(self) -> None:
        """No answer to the probe in time: the peer was at fault after all."""
        probe, self.probe = self.probe, None
        if probe is None:
            return
        self.transport.close()
        if self.replicator.on_error is not None:
            self.replicator.on_error(probe[0])

    def _on_tree_proof(self, msg: Data) -> None:
        """Data with request id 0: the answer to our probe, or a conflict proof a peer pushes
        after finding one itself. Anything else with id 0 is ignored (JS takes no pushes)."""
        probe, self.probe = self.probe, None
        core = self.core
        if msg.upgrade is not None and msg.upgrade.start == 0 and not core.frozen:
            proof = _proof(msg.fork, None, None, None, msg.upgrade)
            try:
                conflict = core.check_conflict(proof)
            except VerificationError as exc:
                raise ProtocolError(
                    "peer sent a whole-tree proof that does not verify", key=core.key, reason=str(exc)
                ) from exc
            if conflict:
                self.replicator._on_conflict()
                return
        if probe is not None:
            raise probe[0]

    def on_no_data(self, msg: NoData) -> None:
        if msg.request == 0 and self.probe is not None:
            probe, self.probe = self.probe, None
            raise probe[0]
        inflight = self.inflight.get(msg.request)
        if inflight is None:
            return
        self._finish(inflight)
        if inflight.request.block is not None:
            self.lacks.add(inflight.request.block.index)
            self.replicator._failed(inflight.request.block.index)
        if inflight.request.hash is not None:
            self.lacks.add(inflight.request.hash.index // 2)  # a reorg probe: try another block
        self.replicator.schedule()

    def on_range(self, msg: Range) -> None:
        end = msg.start + msg.length
        if msg.drop:
            if msg.start < self.remote.contiguous:
                tail_end = self.remote.contiguous
                self.remote.contiguous = msg.start
                self.remote.set_range(end, tail_end, True)
            self.remote.set_range(msg.start, end, False)
            for i in range(msg.start, min(end, msg.start + 4096)):
                self.lacks.add(i)
            return
        if msg.start == 0:
            if msg.length > self.remote.contiguous:
                self.remote.contiguous = min(msg.length, MAX_TRACKED_BLOCK)
        else:
            self.remote.set_range(msg.start, end, True)
        if self.lacks:
            self.lacks = {i for i in self.lacks if not msg.start <= i < end}
        self.replicator.availability_changed()

    def on_bitfield(self, msg: Bitfield) -> None:
        if msg.start < self.remote.contiguous:
            self.remote.contiguous = msg.start
        self.remote.set_words(msg.start, msg.words)
        self.replicator.availability_changed()

    def on_want(self, msg: Want) -> None:
        core = self.core
        if msg.length == 0:
            return
        segment = msg.start // SEGMENT_BLOCKS
        if len(self._remote_wants) < 1024:
            self._remote_wants.add(segment)
        contig = core.contiguous_length
        length = core.length
        if msg.start + msg.length < contig or length == contig or (msg.any and msg.start < contig):
            self.transport.send(Range(0, contig))
            return
        end = min(msg.start + msg.length, length)
        start = msg.start - msg.start % 32
        if msg.any:
            for i in range(max(msg.start, contig), end):
                if core.has(i):
                    self.transport.send(Range(i, 1))
                    return
            return
        page_start = start - start % PAGE_BITS
        while page_start < end:
            page_end = min(page_start + PAGE_BITS, end)
            words = core.bitfield_words(page_start, page_end - page_start)
            if any(words):
                self.transport.send(Bitfield(page_start, words))
            page_start += PAGE_BITS

    def on_extension(self, msg: Extension) -> None:
        name = msg.name or self._last_ext_recv
        self._last_ext_recv = name
        handler = self.replicator._extensions.get(name)
        if handler is not None:
            handler(self, msg.message)


def _matches(req: Request, data: Data) -> bool:
    """Does ``data`` answer ``req`` (same parts, same targets)? JS checks the same things."""
    if data.fork != req.fork and data.upgrade is not None:
        return False
    if data.block is not None and (req.block is None or req.block.index != data.block.index):
        return False
    if data.hash is not None and (req.hash is None or req.hash.index != data.hash.index):
        return False
    if data.seek is not None and (req.seek is None or req.seek.bytes != data.seek.bytes):
        return False
    return not (data.upgrade is not None and req.upgrade is None)
