"""The sans-IO lookup engine on a simulated network (no sockets; addresses are only labels)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hyperlobby.swarm.dht_rpc import (
    Address,
    Query,
    Response,
    RoutingNode,
    RoutingTable,
    peer_id,
    xor_distance,
)


def _network(n: int, k: int, seed: int) -> dict[Address, RoutingTable]:
    rnd = random.Random(seed)
    addrs = [Address(f"127.{i >> 8}.{i & 255}.{rnd.randrange(1, 255)}", 1000 + i) for i in range(n)]
    ids = {a: peer_id(a.host, a.port) for a in addrs}
    tables = {a: RoutingTable(ids[a], k) for a in addrs}
    for a, table in tables.items():
        others = list(addrs)
        rnd.shuffle(others)
        for b in others:
            if b != a:
                table.add(RoutingNode(ids[b], b.host, b.port))
    return tables


def _run(
    query: Query, tables: dict[Address, RoutingTable], dead: set[Address], seed: int
) -> tuple[int, list[tuple[Address, Address]]]:
    """Drive ``query``, answering in a random order; returns (max in flight, down hints)."""
    rnd = random.Random(seed)
    inflight: list[Address] = []
    hints: list[tuple[Address, Address]] = []
    peak = 0
    for _ in range(10_000):
        inflight.extend(query.next_visits(0.0))
        peak = max(peak, len(inflight))
        if not inflight:
            break
        addr = inflight.pop(rnd.randrange(len(inflight)))
        if addr in dead:
            hints += [(h.tell, h.down) for h in query.on_failure(addr, timed_out=True)]
            continue
        table = tables[addr]
        closer = tuple(Address(x.host, x.port) for x in table.nearest(query.target))
        query.on_reply(addr, table.id, Response(tid=0, to=Address("127.0.0.1", 1), closer_nodes=closer))
    assert query.done
    return peak, hints


def test_lookup_finds_exact_k_closest() -> None:
    tables = _network(200, 8, seed=1)
    addrs = list(tables)
    for trial in range(10):
        target = random.Random(trial).randbytes(32)
        q = Query(target, k=8, concurrency=3)
        q.add_candidate(addrs[trial])
        peak, _ = _run(q, tables, set(), seed=trial)
        assert peak <= 3
        truth = sorted(addrs, key=lambda a: xor_distance(target, tables[a].id))[:8]
        assert q.closest_nodes == truth
        assert q.visits < 80  # a walk, not a flood


def test_dead_nodes_are_skipped_and_hinted() -> None:
    tables = _network(150, 8, seed=2)
    addrs = list(tables)
    rnd = random.Random(3)
    dead = set(rnd.sample(addrs[1:], 30))
    target = rnd.randbytes(32)
    q = Query(target, k=8, concurrency=4)
    q.add_candidate(addrs[0])
    _, hints = _run(q, tables, dead, seed=4)
    alive = [a for a in addrs if a not in dead]
    truth = sorted(alive, key=lambda a: xor_distance(target, tables[a].id))[:8]
    assert q.closest_nodes == truth
    assert hints and all(down in dead and tell not in dead for tell, down in hints)
    assert q.errors >= len({d for _, d in hints})


def test_visit_budget_and_deadline() -> None:
    tables = _network(120, 8, seed=5)
    addrs = list(tables)
    q = Query(bytes(32), k=8, concurrency=2, max_visits=5)
    q.add_candidate(addrs[0])
    _run(q, tables, set(), seed=6)
    assert q.visits == 5
    late = Query(bytes(32), deadline=10.0)
    late.add_candidate(addrs[1])
    assert late.next_visits(10.0) == []
    assert late.done and late.expired(11.0)


def test_own_id_is_never_visited() -> None:
    tables = _network(40, 20, seed=7)
    me = next(iter(tables))
    q = Query(random.Random(8).randbytes(32), own_id=tables[me].id)
    assert not q.add_candidate(me)
    for a in list(tables)[1:4]:
        q.add_candidate(a)
    _run(q, tables, set(), seed=9)
    assert me not in q.closest_nodes and len(q.closest_nodes) == 20


_addr = st.builds(Address, st.builds(lambda b: f"127.0.0.{b}", st.integers(1, 40)), st.integers(1, 40))


@settings(max_examples=60)
@given(st.data())
def test_hostile_answers_cannot_prolong_or_break_a_query(data: st.DataObject) -> None:
    """Whatever nodes answer (random, lying, huge lists), a query ends within its budget."""
    q = Query(data.draw(st.binary(min_size=32, max_size=32)), k=5, concurrency=3, max_visits=30)
    q.add_candidate(data.draw(_addr))
    for _ in range(200):
        visits = q.next_visits(0.0)
        if not visits and q.inflight == 0:
            break
        for addr in visits:
            if data.draw(st.booleans()):
                q.on_failure(addr, timed_out=data.draw(st.booleans()))
                continue
            closer = tuple(data.draw(st.lists(_addr, max_size=30)))
            claimed = data.draw(st.one_of(st.none(), st.just(peer_id(addr.host, addr.port))))
            err = data.draw(st.sampled_from([0, 0, 1, 2]))
            q.on_reply(addr, claimed, Response(tid=1, to=addr, closer_nodes=closer, error=err))
    assert q.done
    assert q.visits <= 30
    ids = [r.id for r in q.closest_replies]
    assert len(ids) <= 5 and len(set(ids)) == len(ids)
    dists = [xor_distance(q.target, i or b"") for i in ids]
    assert dists == sorted(dists)
