"""The lobby's decisions, without IO: who is admitted, which signals count, in which order.

:class:`HostMachine` is the host's bookkeeping. The asyncio layer hands it what arrived (an
admission request with the connection's handshake hash and the nonce we sent on it, an opened
offer, "this guest connected", "this guest left", the time) and does what it answers. It holds
the invariants the tests check: never more than ``max_peers`` places taken, nobody admitted to a
protected session without a valid proof, an offer counts only from an admitted guest's own
writer, for the current epoch, with a sequence number above every earlier one from that guest.

:class:`CausalMerge` turns several append-only logs into one order that respects causality: an
entry comes after the earlier entries of its own log and after every entry its ``clock`` says
its writer had seen. Among entries that are ready at the same time the smaller writer key goes
first, so every reader with the same entries produces the same order.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field

from hyperlobby.crypto.keys import verify
from hyperlobby.lobby.protocol import (
    MAX_PASSWORD_FAILURES,
    Binding,
    Request,
    SignalRecord,
    Verdict,
    check_proof,
)


@dataclass(slots=True)
class Member:
    binding: Binding
    admitted_at: float
    last_seq: int = 0
    connected: bool = False


@dataclass(frozen=True, slots=True)
class OfferAccepted:
    guest: str
    signal: bytes


@dataclass(frozen=True, slots=True)
class OfferIgnored:
    guest: str
    reason: str


class HostMachine:
    """The host's admission and signal sequencing for one session epoch."""

    def __init__(
        self,
        lobby: bytes,
        epoch: bytes,
        max_peers: int,
        *,
        password_key: bytes | None = None,
        connect_timeout: float = 60.0,
    ) -> None:
        self.lobby = lobby
        self.epoch = epoch
        self.max_peers = max_peers
        self.password_key = password_key
        self.connect_timeout = connect_timeout
        self.members: dict[str, Member] = {}
        self.failures: dict[str, int] = {}
        self.seqs: dict[str, int] = {}  # highest offer seq per guest, kept across re-admissions
        self.closed = False

    @property
    def protected(self) -> bool:
        return self.password_key is not None

    @property
    def taken(self) -> int:
        return len(self.members)

    def writer_of(self, guest: str) -> Binding | None:
        m = self.members.get(guest)
        return None if m is None else m.binding

    def admit(self, request: Request, handshake_hash: bytes, nonce: bytes, now: float) -> Verdict:
        """Decide on one admission request received on the connection with ``handshake_hash``
        in answer to our ``nonce``. On success the guest holds a place until it leaves."""
        b = request.binding
        if self.closed:
            return Verdict(False, "closed", "the session has ended")
        if not b.valid(self.lobby):
            return Verdict(False, "bad-binding", "the writer is not bound to the identity")
        if not verify(Request.auth_message(handshake_hash, nonce, b.writer), request.auth, b.identity_signer):
            return Verdict(False, "bad-auth", "the identity signature does not match this connection")
        guest = b.guest
        if self.password_key is not None:
            if self.failures.get(guest, 0) >= MAX_PASSWORD_FAILURES:
                return Verdict(False, "too-many-attempts", "too many wrong passwords")
            if not request.proof or not check_proof(
                self.password_key, request.proof, handshake_hash, nonce, b.identity, self.lobby
            ):
                self.failures[guest] = self.failures.get(guest, 0) + 1
                return Verdict(False, "password", "wrong or missing password")
        taken = self.taken - (1 if guest in self.members else 0)
        if taken >= self.max_peers:
            return Verdict(False, "full", f"the session is full ({self.max_peers} peers)")
        old = self.members.get(guest)
        if old is not None and old.binding.writer != b.writer:
            self.seqs.pop(guest, None)  # another writer: its own sequence
        self.failures.pop(guest, None)
        self.members[guest] = Member(b, now, self.seqs.get(guest, 0))
        return Verdict(True)

    def offer(self, guest: str, record: SignalRecord) -> OfferAccepted | OfferIgnored:
        """An opened ``<guest>.offer.bin`` (already checked to be signed by the guest's writer)."""
        m = self.members.get(guest)
        if self.closed:
            return OfferIgnored(guest, "closed")
        if m is None:
            return OfferIgnored(guest, "not admitted")
        if record.kind != "offer" or record.guest != guest or record.lobby != self.lobby:
            return OfferIgnored(guest, "not an offer from this guest for this lobby")
        if record.epoch != self.epoch:
            return OfferIgnored(guest, "offer from another session")
        if record.seq <= m.last_seq:
            return OfferIgnored(guest, "offer already seen (replay)")
        m.last_seq = record.seq
        self.seqs[guest] = record.seq
        return OfferAccepted(guest, record.signal)

    def connected(self, guest: str) -> bool:
        m = self.members.get(guest)
        if m is None:
            return False
        m.connected = True
        return True

    def left(self, guest: str) -> bool:
        """The guest is gone: its place is free again (True if it held one)."""
        return self.members.pop(guest, None) is not None

    def expire(self, now: float) -> list[str]:
        """Guests admitted but never connected within ``connect_timeout``: their places free."""
        gone = [
            g
            for g, m in self.members.items()
            if not m.connected and now - m.admitted_at > self.connect_timeout
        ]
        for g in gone:
            del self.members[g]
        return gone

    def close(self) -> list[str]:
        self.closed = True
        gone = list(self.members)
        self.members.clear()
        return gone


def answer_matches(record: SignalRecord, lobby: bytes, epoch: bytes, guest: str, seq: int) -> bool:
    """Is this opened answer the one for the offer we made (and not an old one)?"""
    return (
        record.kind == "answer"
        and record.lobby == lobby
        and record.epoch == epoch
        and record.guest == guest
        and record.seq == seq
    )


# --- causal merge -----------------------------------------------------------------------------------


@dataclass(slots=True)
class CausalMerge:
    """Merge append-only logs in causal order, incrementally (see the module docstring)."""

    emitted: dict[bytes, int] = field(default_factory=dict)
    pending: dict[bytes, list[Mapping[bytes, int]]] = field(default_factory=dict)

    def add(self, writer: bytes, clock: Mapping[bytes, int]) -> None:
        """The next entry of ``writer``'s log, with what its writer had seen of other logs."""
        self.pending.setdefault(writer, []).append(dict(clock))
        self.emitted.setdefault(writer, 0)

    def _ready(self, writer: bytes) -> bool:
        queue = self.pending.get(writer)
        if not queue:
            return False
        return all(self.emitted.get(w, 0) >= n for w, n in queue[0].items() if w != writer)

    def ready(self) -> list[tuple[bytes, int]]:
        """Every entry that can be delivered now, as (writer, index), in delivery order."""
        out: list[tuple[bytes, int]] = []
        heap = [w for w in self.pending if self._ready(w)]
        heapq.heapify(heap)
        while heap:
            w = heapq.heappop(heap)
            if not self._ready(w):
                continue
            self.pending[w].pop(0)
            index = self.emitted[w]
            self.emitted[w] = index + 1
            out.append((w, index))
            # Delivering one entry can only make this writer's next entry, or entries waiting on
            # this writer, ready.
            for other in self.pending:
                if self._ready(other) and other not in heap:
                    heapq.heappush(heap, other)
        return out

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self.pending.values())


__all__ = ["CausalMerge", "HostMachine", "Member", "OfferAccepted", "OfferIgnored", "answer_matches"]
