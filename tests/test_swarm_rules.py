"""The swarm's sans-IO rules: duplicate resolution, retry buckets and schedule, priorities, queue."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperlobby.swarm.hyperswarm.connection_set import ConnectionSet, PeerQueue, keep_new_connection
from hyperlobby.swarm.hyperswarm.peer_info import MIN_CONNECTION_TIME, PeerInfo, Priority
from hyperlobby.swarm.hyperswarm.retry_timer import Backoff, BulkTimer, RetryTimer, select_backoff

LOW = b"\x01" * 32
HIGH = b"\xf0" * 32


def test_duplicate_keeps_the_dial_of_the_larger_key() -> None:
    # HIGH's swarm receives LOW's dial while its own dial to LOW is pending: keeps its own.
    assert not keep_new_connection(
        local_public_key=HIGH, remote_public_key=LOW, new_is_initiator=False, existing_established=False
    )
    # LOW's swarm receives HIGH's dial while its own is pending: drops its own, keeps HIGH's.
    assert keep_new_connection(
        local_public_key=LOW, remote_public_key=HIGH, new_is_initiator=False, existing_established=False
    )
    # an existing connection that already carried bytes both ways is presumed dead: the new one wins
    assert keep_new_connection(
        local_public_key=HIGH, remote_public_key=LOW, new_is_initiator=False, existing_established=True
    )


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_both_ends_keep_the_same_connection(a: bytes, b: bytes) -> None:
    """Each end sees the other's dial arrive as a server connection; they must pick alike."""
    if a == b:
        return
    a_keeps_bs_dial = keep_new_connection(
        local_public_key=a, remote_public_key=b, new_is_initiator=False, existing_established=False
    )
    b_keeps_as_dial = keep_new_connection(
        local_public_key=b, remote_public_key=a, new_is_initiator=False, existing_established=False
    )
    # exactly one of the two dials survives, and both ends agree which
    assert a_keeps_bs_dial != b_keeps_as_dial
    assert a_keeps_bs_dial == (b > a)


class _C:
    def __init__(self, key: bytes) -> None:
        self.remote_public_key = key


def test_connection_set_delete_spares_a_replacement() -> None:
    s = ConnectionSet[_C]()
    old, new = _C(LOW), _C(LOW)
    s.add(old)
    s.add(new)
    s.delete(old)  # the loser closing must not evict the winner
    assert s.get(LOW) is new and LOW in s and len(s) == 1
    s.delete(new)
    assert LOW not in s and len(s) == 0


def _peer(**kw: object) -> PeerInfo:
    p = PeerInfo(bytes(32))
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def test_backoff_buckets_follow_hyperswarm() -> None:
    assert select_backoff(_peer(attempts=0)) is Backoff.SHORT
    proven = [select_backoff(_peer(attempts=n, proven=True)) for n in (1, 2, 3, 4)]
    assert proven == [Backoff.SHORT, Backoff.MEDIUM, Backoff.LONG, None]
    unproven = [select_backoff(_peer(attempts=n)) for n in (1, 2, 3, 4)]
    assert unproven == [Backoff.MEDIUM, Backoff.LONG, Backoff.LONG, None]
    assert select_backoff(_peer(attempts=7, explicit=True)) is Backoff.EXTRA_LONG
    assert select_backoff(_peer(attempts=1, banned=True)) is None
    assert select_backoff(_peer(attempts=1, reconnecting=False)) is None


def test_bulk_timer_releases_after_one_full_tick() -> None:
    t = BulkTimer[str](1.0)
    t.add("a", 10.0)  # origin 10; ticks at 11, 12, ...
    assert t.poll(11.5) == [] and t.next_deadline() == 12.0
    assert t.poll(12.0) == ["a"] and t.next_deadline() is None
    t.add("b", 14.3)  # after idle ticks: between ticks 14 and 15, so released at 16
    assert t.next_deadline() == 16.0
    assert t.poll(15.9) == [] and t.poll(16.0) == ["b"]
    t.add("c", 16.1)
    t.add("d", 16.9)  # same inter-tick window: one batch
    assert t.poll(30.0) == ["c", "d"]


@pytest.mark.parametrize("period", [0.66, 3.3])
@given(st.lists(st.floats(min_value=0, max_value=20), min_size=1, max_size=6))
def test_bulk_timer_wait_is_between_one_and_two_periods(period: float, gaps: list[float]) -> None:
    """Whatever the add times, each item is released after more than one and at most two ticks."""
    t = BulkTimer[int](period)
    now = 0.0
    added: dict[int, float] = {}
    released: dict[int, float] = {}
    for i, gap in enumerate(gaps):
        target = now + gap
        while (deadline := t.next_deadline()) is not None and deadline <= target:
            for x in t.poll(deadline):  # the owner polls at each deadline as time passes
                released[x] = deadline
        now = target
        t.add(i, now)
        added[i] = now
    while (deadline := t.next_deadline()) is not None:
        assert deadline >= now
        now = deadline
        for x in t.poll(now):
            released[x] = now
    for i, at in added.items():
        wait = released[i] - at
        assert period - 1e-6 <= wait <= 2 * period + 1e-6


def test_retry_schedule_of_a_peer_that_never_answers() -> None:
    """A peer that never connects is retried on the medium, long, long timers, then dropped."""
    timer = RetryTimer([1.0, 5.0, 15.0, 600.0], jitter=0.0)
    peer = PeerInfo(LOW)
    now = 0.0
    waits = []
    for _ in range(5):
        peer.disconnected(now)
        if not timer.add(peer, now):
            break
        deadline = timer.next_deadline()
        assert deadline is not None
        assert timer.poll(deadline - 1e-6) == []
        assert timer.poll(deadline) == [peer]
        waits.append(round(deadline - now, 3))
        now = deadline
    assert peer.attempts == 4  # the fourth failure is final
    assert len(waits) == 3
    m, l1, l2 = waits
    assert 0.66 * 5 <= m <= 1.32 * 5 and 0.66 * 15 <= l1 <= 1.32 * 15 and 0.66 * 15 <= l2 <= 1.32 * 15


def test_long_connection_resets_attempts_short_one_does_not() -> None:
    p = PeerInfo(LOW)
    p.disconnected(0.0)
    p.disconnected(1.0)
    assert p.attempts == 2
    p.connected(2.0)
    p.disconnected(2.0 + MIN_CONNECTION_TIME - 1)
    assert p.attempts == 3 and p.proven
    p.connected(100.0)
    p.disconnected(100.0 + MIN_CONNECTION_TIME)
    assert p.attempts == 1  # fast retry after a connection that had lasted


def test_priorities_and_update_rules() -> None:
    assert [_peer(attempts=n).current_priority() for n in range(5)] == [
        Priority.NORMAL,
        Priority.VERY_HIGH,
        Priority.HIGH,
        Priority.LOW,
        Priority.VERY_LOW,
    ]
    assert _peer(tried=True).current_priority() is Priority.VERY_LOW  # tried, never connected
    assert not _peer(attempts=4).update_priority()
    assert not _peer(banned=True).update_priority()
    assert not _peer(queued=True).update_priority()
    explicit = _peer(attempts=9, explicit=True)
    assert explicit.update_priority() and explicit.attempts == 3 and explicit.priority is Priority.LOW
    fresh = _peer(attempts=3, tried=True, client=True)
    fresh.reset()
    assert fresh.attempts == 0 and fresh.server and fresh.update_priority()
    assert fresh.priority is Priority.NORMAL
    assert _peer().should_gc()
    assert not _peer(waiting=True).should_gc() and not _peer(explicit=True).should_gc()


def test_queue_is_by_priority_and_random_within() -> None:
    q = PeerQueue(random.Random(7))
    peers = [PeerInfo(bytes([i]) * 32) for i in range(9)]
    for i, p in enumerate(peers):
        p.priority = [Priority.LOW, Priority.NORMAL, Priority.VERY_HIGH][i % 3]
        q.add(p)
    out = [q.shift() for _ in range(9)]
    assert q.shift() is None and len(q) == 0
    assert [p.priority for p in out if p] == sorted((p.priority for p in peers), reverse=True)
    # within a level the order is shuffled, not insertion order, for some seed
    orders = set()
    for seed in range(8):
        q = PeerQueue(random.Random(seed))
        for p in peers[::3]:
            q.add(p)
        orders.add(tuple(id(q.shift()) for _ in range(3)))
    assert len(orders) > 1


def test_max_peers_leaves_room_for_explicit_peers() -> None:
    from hyperlobby.swarm.hyperswarm.connection_set import within_max_peers

    def allows(conns: int, explicit: int, cap: int = 12) -> bool:
        return within_max_peers(connections=conns, explicit_peers=explicit, max_peers=cap)

    assert allows(11, 0) and not allows(12, 0)  # no explicit peers: the plain cap
    assert allows(5, 1) and not allows(6, 1)  # one: each connection counts twice
    assert allows(3, 3) and not allows(4, 3)  # two or three: three times
    assert allows(2, 9) and not allows(3, 9)  # four or more: four times
    assert not allows(0, 0, cap=0)


def test_only_wanted_peers_are_reconnected() -> None:
    from hyperlobby.swarm.hyperswarm.connection_set import wants_reconnect

    a, b = b"\x0a" * 32, b"\x0b" * 32
    assert wants_reconnect(explicit=False, topics=[a, b], joined={b})
    assert not wants_reconnect(explicit=False, topics=[a], joined={b})  # left the only topic
    assert not wants_reconnect(explicit=False, topics=[], joined={a})  # it dialled us: no topic
    assert wants_reconnect(explicit=True, topics=[], joined=set())
