"""The sans-IO lobby: a Hypothesis state machine for admission and sequencing, the causal merge."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hyperlobby.crypto.keys import key_pair, sign
from hyperlobby.lobby.machine import CausalMerge, HostMachine, OfferAccepted
from hyperlobby.lobby.protocol import (
    Binding,
    Request,
    SignalRecord,
    key_of_signer,
    password_proof,
)

LOBBY = key_of_signer(key_pair(b"L" * 32).public_key)
EPOCH = b"E" * 16
OTHER_EPOCH = b"O" * 16
PW_KEY = b"k" * 32
HH = b"h" * 64
NONCE = b"n" * 32
IDENTITIES = [key_pair(bytes([i]) * 32) for i in range(1, 6)]
WRITERS = [key_pair(bytes([i + 100]) * 32) for i in range(1, 6)]
MAX = 3


def request(i: int, *, good_password: bool, forged: bool = False) -> Request:
    ident, writer = IDENTITIES[i], WRITERS[i]
    identity = key_of_signer(ident.public_key)
    signer = IDENTITIES[(i + 1) % len(IDENTITIES)] if forged else ident
    b = Binding.make(LOBBY, identity, signer, key_of_signer(writer.public_key), writer.public_key)
    assert ident.secret_key is not None
    auth = sign(Request.auth_message(HH, NONCE, b.writer), ident.secret_key)
    proof = password_proof(PW_KEY if good_password else b"x" * 32, HH, NONCE, identity, LOBBY)
    return Request(b, auth, proof)


def gid(i: int) -> str:
    return key_of_signer(IDENTITIES[i].public_key).hex()


class LobbyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.m = HostMachine(LOBBY, EPOCH, MAX, password_key=PW_KEY, connect_timeout=10.0)
        self.now = 0.0
        self.admitted: set[int] = set()
        self.accepted: dict[str, list[int]] = {}

    @rule(i=st.integers(0, 4), good=st.booleans(), forged=st.booleans())
    def ask(self, i: int, good: bool, forged: bool) -> None:
        before = self.m.taken
        v = self.m.admit(request(i, good_password=good, forged=forged), HH, NONCE, self.now)
        if v.ok:
            assert good and not forged and not self.m.closed
            self.admitted.add(i)
        else:
            assert v.reason in {"full", "password", "bad-binding", "too-many-attempts", "closed"}
            if v.reason == "full":
                assert before >= MAX and i not in self.admitted
        assert (i in self.admitted) == (gid(i) in self.m.members)

    @rule(i=st.integers(0, 4), seq=st.integers(0, 6), old_epoch=st.booleans())
    def offer(self, i: int, seq: int, old_epoch: bool) -> None:
        rec = SignalRecord(LOBBY, OTHER_EPOCH if old_epoch else EPOCH, gid(i), "offer", seq, b"sdp")
        result = self.m.offer(gid(i), rec)
        if isinstance(result, OfferAccepted):
            assert i in self.admitted and not old_epoch
            seen = self.accepted.setdefault(gid(i), [])
            assert not seen or seq > seen[-1]
            seen.append(seq)

    @rule(i=st.integers(0, 4))
    def connect(self, i: int) -> None:
        assert self.m.connected(gid(i)) == (i in self.admitted)

    @rule(i=st.integers(0, 4))
    def leave(self, i: int) -> None:
        assert self.m.left(gid(i)) == (i in self.admitted)
        self.admitted.discard(i)

    @rule(dt=st.floats(0, 20))
    def tick(self, dt: float) -> None:
        self.now += dt
        for g in self.m.expire(self.now):
            self.admitted = {i for i in self.admitted if gid(i) != g}

    @precondition(lambda self: not self.m.closed)
    @rule()
    def close(self) -> None:
        self.m.close()
        self.admitted.clear()

    @invariant()
    def within_capacity(self) -> None:
        assert self.m.taken <= MAX
        assert {gid(i) for i in self.admitted} == set(self.m.members)


TestLobbyMachine = LobbyMachine.TestCase
TestLobbyMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


# --- causal merge ---------------------------------------------------------------------------------

WRITER_KEYS = [bytes([i]) * 32 for i in range(3)]


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[bytes, dict[bytes, int]]]:
    """A run of appends by three writers, each entry's clock being what its writer had seen."""
    lengths = {w: 0 for w in WRITER_KEYS}
    seen = {w: {v: 0 for v in WRITER_KEYS} for w in WRITER_KEYS}
    out: list[tuple[bytes, dict[bytes, int]]] = []
    for _ in range(draw(st.integers(0, 25))):
        w = draw(st.sampled_from(WRITER_KEYS))
        if draw(st.booleans()):  # replicate: w learns everything others have written so far
            for v in WRITER_KEYS:
                seen[w][v] = lengths[v]
        clock = {v: n for v, n in seen[w].items() if v != w and n}
        out.append((w, clock))
        lengths[w] += 1
    return out


@given(histories(), st.randoms())
@settings(max_examples=150, deadline=None)
def test_merge_is_causal_and_deterministic(
    history: list[tuple[bytes, dict[bytes, int]]], rnd: object
) -> None:
    per_writer: dict[bytes, list[dict[bytes, int]]] = {}
    for w, clock in history:
        per_writer.setdefault(w, []).append(clock)

    def merged(feed_order: list[bytes]) -> list[tuple[bytes, int]]:
        m = CausalMerge()
        out: list[tuple[bytes, int]] = []
        cursors = dict.fromkeys(per_writer, 0)
        for w in feed_order:
            m.add(w, per_writer[w][cursors[w]])
            cursors[w] += 1
            out.extend(m.ready())
        assert m.waiting == 0
        return out

    # Logs arrive interleaved in any way (each log in its own order, as replication gives them).
    feed = [w for w, _ in history]
    shuffled = feed[:]
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    # Turn the shuffle into a valid per-log order: the k-th occurrence of w is entry k of w.
    for order in (feed, shuffled):
        out = merged(order)
        assert sorted(out) == sorted((w, i) for w, es in per_writer.items() for i in range(len(es)))
        pos = {e: n for n, e in enumerate(out)}
        for w, entries in per_writer.items():
            for i, clock in enumerate(entries):
                if i:
                    assert pos[(w, i - 1)] < pos[(w, i)]
                for v, n in clock.items():
                    assert pos[(v, n - 1)] < pos[(w, i)]


def test_merge_waits_for_missing_dependencies() -> None:
    a, b = WRITER_KEYS[0], WRITER_KEYS[1]
    m = CausalMerge()
    m.add(b, {a: 2})
    assert m.ready() == []
    m.add(a, {})
    assert m.ready() == [(a, 0)]
    m.add(a, {})
    assert m.ready() == [(a, 1), (b, 0)]


def test_password_proof_is_bound_to_connection_and_nonce() -> None:
    p = password_proof(PW_KEY, HH, NONCE, b"i" * 32, LOBBY)
    assert p != password_proof(PW_KEY, b"H" * 64, NONCE, b"i" * 32, LOBBY)
    assert p != password_proof(PW_KEY, HH, os.urandom(32), b"i" * 32, LOBBY)
