"""The sans-IO holepunching pieces: NAT analysis, path decisions, punch strategy, probes.

The last tests run two punchers against simulated NATs in memory (no sockets): packets only
get through a NAT that has sent to their source before, and a RANDOM NAT picks a new public
port per destination, which is what makes the strategies succeed or fail.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field

import pytest

from hyperlobby.swarm.dht_rpc import Address
from hyperlobby.swarm.hyperdht import messages as m
from hyperlobby.swarm.hyperdht.constants import (
    FIREWALL_CONSISTENT,
    FIREWALL_OPEN,
    FIREWALL_RANDOM,
    FIREWALL_UNKNOWN,
)
from hyperlobby.swarm.hyperdht.holepuncher import (
    BIRTHDAY_SOCKETS,
    HOLEPUNCH_TTL,
    RANDOM_PROBE_TRIES,
    ClientPath,
    NatSampler,
    Puncher,
    RandomPunches,
    RemoteAddress,
    ServerPath,
    Strategy,
    birthday_schedule,
    client_path,
    consistent_probe_schedule,
    is_bogon,
    is_private,
    is_reserved,
    local_addresses,
    match_address,
    random_probe_schedule,
    server_path,
)
from hyperlobby.swarm.hyperdht.noise_wrap import NoiseWrap
from hyperlobby.swarm.hyperdht.secure_payload import SecurePayload
from hyperlobby.wire.noise import NoiseKeyPair

A = Address


def test_bogon_classes_follow_the_bogon_package() -> None:
    for host in ("127.0.0.1", "10.1.2.3", "192.168.1.1", "172.16.0.1", "100.64.0.1", "169.254.1.1"):
        assert is_private(host) and not is_reserved(host) and is_bogon(host)
    for host in ("0.0.0.0", "224.0.0.1", "255.255.255.255", "192.0.2.5", "203.0.113.9"):
        assert is_reserved(host) and is_bogon(host)
    for host in ("8.8.8.8", "172.32.0.1", "100.128.0.1"):
        assert not is_bogon(host)


def test_match_address_prefers_the_longest_prefix() -> None:
    mine = [A("192.168.122.238", 1)]
    assert match_address(mine, []) is None
    assert match_address(mine, [A("10.0.0.1", 2)]) is None
    assert match_address(mine, [A("192.1.0.1", 2), A("192.168.0.23", 3)]) == A("192.168.0.23", 3)
    assert match_address(mine, [A("192.168.0.23", 3), A("192.168.122.1", 4)]) == A("192.168.122.1", 4)
    assert match_address([A("127.0.0.1", 5)], [A("127.0.0.1", 6)]) == A("127.0.0.1", 6)


def test_local_addresses() -> None:
    assert local_addresses("127.0.0.1", 7) == [A("127.0.0.1", 7)]
    assert local_addresses("0.0.0.0", 7, ["127.0.0.1", "10.0.0.5"]) == [A("10.0.0.5", 7)]
    assert local_addresses("0.0.0.0", 7) == [A("127.0.0.1", 7)]


def test_nat_sampler_consistent_random_and_open() -> None:
    nat = NatSampler()
    for i in range(2):
        nat.add(A("1.2.3.4", 5000), A("9.9.9.9", i))
    assert nat.firewall == FIREWALL_UNKNOWN and not nat.settled
    nat.add(A("1.2.3.4", 5000), A("9.9.9.9", 1))  # the same node counts once
    assert nat.sampled == 2
    nat.add(A("1.2.3.4", 5000), A("9.9.9.9", 2))
    assert nat.firewall == FIREWALL_CONSISTENT and nat.settled
    assert nat.addresses == [A("1.2.3.4", 5000)]

    rnd = NatSampler()
    for i in range(4):
        rnd.add(A("1.2.3.4", 6000 + i), A("9.9.9.9", i))
    assert rnd.firewall == FIREWALL_RANDOM and rnd.settled
    assert rnd.addresses == [A("1.2.3.4", 0)]

    two_hosts = NatSampler()
    for i, seen in enumerate([A("1.1.1.1", 1), A("1.1.1.1", 1), A("2.2.2.2", 2), A("2.2.2.2", 2)]):
        two_hosts.add(seen, A("9.9.9.9", i))
    assert two_hosts.firewall == FIREWALL_CONSISTENT

    open_nat = NatSampler(firewalled=False)
    assert open_nat.firewall == FIREWALL_OPEN
    open_nat.add(A("1.2.3.4", 1), A("9.9.9.9", 1))
    assert open_nat.firewall == FIREWALL_OPEN and open_nat.settled


def test_nat_sampler_freeze_keeps_the_verdict() -> None:
    nat = NatSampler()
    for i, port in enumerate((5000, 5001, 5002)):
        nat.add(A("1.2.3.4", port), A("9.9.9.9", i))
    assert nat.firewall == FIREWALL_RANDOM
    nat.freeze()  # the verdict went out to the peer: later samples must not change it
    for i in range(3, 5):
        nat.add(A("1.2.3.4", 5000), A("9.9.9.9", i))
    assert nat.firewall == FIREWALL_RANDOM
    nat.unfreeze()
    assert nat.firewall == FIREWALL_CONSISTENT
    nat2 = NatSampler()
    nat2.add(A("1.2.3.4", 1), A("9.9.9.9", 1))
    nat2.give_up()
    assert nat2.settled and nat2.firewall == FIREWALL_UNKNOWN


def _payload(firewall: int, addresses: list[Address], relays: int = 1) -> m.NoisePayload:
    relay = m.RelayInfo(A("5.5.5.5", 1), A("6.6.6.6", 2))
    return m.NoisePayload(
        firewall=firewall,
        holepunch=m.HolepunchInfo(3, (relay,) * relays) if relays >= 0 else None,
        addresses4=tuple(addresses),
        udx=m.UdxInfo(1, 0),
    )


def test_client_path_decisions() -> None:
    relay, server, me = A("5.5.5.5", 1), A("6.6.6.6", 2), A("7.7.7.7", 3)
    kw = {"relay_address": relay, "client_address": me, "own_firewall": FIREWALL_UNKNOWN}
    # OPEN server: its first public address, else where the relay saw it
    plan = client_path(
        _payload(FIREWALL_OPEN, [A("10.0.0.1", 9), A("8.8.8.8", 9)]), server_address=server, **kw
    )
    assert plan == type(plan)(ClientPath.DIRECT, A("8.8.8.8", 9))
    plan = client_path(_payload(FIREWALL_OPEN, [A("127.0.0.1", 9)]), server_address=server, **kw)
    assert plan.path is ClientPath.DIRECT and plan.address == server
    # relayed and not offering to holepunch: dial it anyway
    plan = client_path(_payload(FIREWALL_UNKNOWN, [], relays=0), server_address=server, **kw)
    assert plan.path is ClientPath.DIRECT and plan.address == server
    # we are OPEN: wait for the server
    plan = client_path(
        _payload(FIREWALL_UNKNOWN, []), server_address=server, relay_address=relay, client_address=me,
        own_firewall=FIREWALL_OPEN,
    )  # fmt: skip
    assert plan.path is ClientPath.PASSIVE
    # both firewalled, different hosts: holepunch
    plan = client_path(_payload(FIREWALL_UNKNOWN, [A("10.0.0.1", 9)]), server_address=server, **kw)
    assert plan.path is ClientPath.HOLEPUNCH and plan.lan_ping is None
    # same public host: race the LAN address (best match with ours) against the punch
    same = {"relay_address": relay, "client_address": A("6.6.6.6", 44), "own_firewall": FIREWALL_UNKNOWN}
    lan = [A("192.168.1.7", 9), A("10.0.0.1", 9)]
    plan = client_path(
        _payload(FIREWALL_UNKNOWN, lan), server_address=server, my_local_addresses=[A("10.0.0.2", 1)], **same
    )
    assert plan.path is ClientPath.HOLEPUNCH and plan.lan_ping == A("10.0.0.1", 9)
    plan = client_path(_payload(FIREWALL_UNKNOWN, lan), server_address=server, lan=False, **same)
    assert plan.path is ClientPath.HOLEPUNCH and plan.lan_ping is None
    # not holepunchable, not relayed (we reached the server's own node), same host: LAN only
    plan = client_path(
        _payload(FIREWALL_UNKNOWN, lan, relays=0), server_address=server, relay_address=server,
        client_address=A("6.6.6.6", 44), own_firewall=FIREWALL_UNKNOWN,
    )  # fmt: skip
    assert plan.path is ClientPath.CANNOT  # not relayed: connect.js never looks for a LAN path


def test_server_path_decisions() -> None:
    client, server = A("6.6.6.6", 1), A("6.6.6.6", 2)
    common = {"client_address": client, "server_address": server, "my_local_addresses": [A("10.0.0.2", 1)]}
    firewalled = _payload(FIREWALL_UNKNOWN, [A("10.0.0.9", 3)])
    assert server_path(_payload(FIREWALL_OPEN, []), direct=False, our_remote_address=None, **common) is (
        ServerPath.CONNECT
    )
    assert server_path(firewalled, direct=True, our_remote_address=None, **common) is ServerPath.CONNECT
    assert server_path(firewalled, direct=False, our_remote_address=None, **common) is ServerPath.PREPUNCH_LAN
    other = {**common, "client_address": A("7.7.7.7", 1)}
    assert (
        server_path(firewalled, direct=False, our_remote_address=A("6.6.6.6", 2), **other) is ServerPath.WAIT
    )
    assert server_path(firewalled, direct=False, our_remote_address=None, never_punch=True, **other) is (
        ServerPath.WAIT
    )
    assert server_path(firewalled, direct=False, our_remote_address=None, **other) is ServerPath.HOLEPUNCH


def _nat(firewall: int) -> NatSampler:
    nat = NatSampler()
    nat.firewall = firewall
    return nat


@pytest.mark.parametrize(
    ("local", "remote", "verified", "expected"),
    [
        (FIREWALL_CONSISTENT, FIREWALL_CONSISTENT, False, Strategy.CONSISTENT),
        (FIREWALL_OPEN, FIREWALL_CONSISTENT, False, Strategy.CONSISTENT),
        (FIREWALL_CONSISTENT, FIREWALL_RANDOM, False, Strategy.NONE),
        (FIREWALL_CONSISTENT, FIREWALL_RANDOM, True, Strategy.RANDOM_PROBES),
        (FIREWALL_RANDOM, FIREWALL_CONSISTENT, True, Strategy.BIRTHDAY),
        (FIREWALL_RANDOM, FIREWALL_RANDOM, True, Strategy.NONE),
        (FIREWALL_UNKNOWN, FIREWALL_CONSISTENT, True, Strategy.NONE),
    ],
)
def test_strategy_matrix(local: int, remote: int, verified: bool, expected: Strategy) -> None:
    p = Puncher(True, _nat(local))
    p.update_remote(
        punching=True, firewall=remote, addresses=[A("1.2.3.4", 5)], verified="1.2.3.4" if verified else None
    )
    assert p.strategy() is expected
    assert p.unstable() == (
        local == FIREWALL_UNKNOWN or (local >= FIREWALL_RANDOM and remote >= FIREWALL_RANDOM)
    )


def test_verification_sticks_and_probes_connect_the_initiator() -> None:
    p = Puncher(True, _nat(FIREWALL_CONSISTENT))
    assert p.strategy() is Strategy.NONE  # no remote addresses yet
    p.update_remote(punching=False, firewall=FIREWALL_RANDOM, addresses=[A("1.2.3.4", 5)], verified="1.2.3.4")
    p.update_remote(punching=True, firewall=FIREWALL_RANDOM, addresses=[A("1.2.3.4", 6)], verified=None)
    assert p.remote_addresses == [RemoteAddress("1.2.3.4", 6, True)]
    assert p.on_probe(A("1.2.3.4", 6)) is False and p.connected
    responder = Puncher(False, _nat(FIREWALL_CONSISTENT))
    assert responder.on_probe(A("1.2.3.4", 6)) is True and not responder.connected


def test_consistent_probe_schedule() -> None:
    addrs = [RemoteAddress("1.1.1.1", 1, True), RemoteAddress("2.2.2.2", 2, False)]
    sched = consistent_probe_schedule(addrs, is_initiator=True, tries=4)
    assert sched == [
        (0.0, A("1.1.1.1", 1)),
        (1.0, A("1.1.1.1", 1)),
        (2.0, A("1.1.1.1", 1)),
        (3.0, A("1.1.1.1", 1)),
        (3.0, A("2.2.2.2", 2)),  # unverified addresses only every fourth round
    ]
    late = consistent_probe_schedule(addrs, is_initiator=False, tries=1)
    assert late == [(1.0, A("1.1.1.1", 1))]


# --- in-memory punching ----------------------------------------------------------------------


@dataclass
class FakeNat:
    """A NAT in front of one socket: ``public`` host, endpoint-dependent filtering."""

    public_host: str
    random_ports: bool
    base_port: int
    opened: set[Address] = field(default_factory=set)
    mapping: dict[Address, int] = field(default_factory=dict)

    def outbound(self, dest: Address) -> Address:
        self.opened.add(dest)
        if not self.random_ports:
            return A(self.public_host, self.base_port)
        port = self.mapping.setdefault(dest, self.base_port + 1 + len(self.mapping))
        return A(self.public_host, port)

    def admits(self, source: Address) -> bool:
        return source in self.opened


class World:
    """Two punchers behind FakeNats exchanging 1-byte probes in simulated time."""

    def __init__(self, nat_a: FakeNat, nat_b: FakeNat) -> None:
        self.nats = {"a": nat_a, "b": nat_b}
        self.queue: list[tuple[float, int, str, Address]] = []
        self.seq = itertools.count()
        self.delivered: list[tuple[str, Address]] = []

    def public_seen_by(self, side: str, observer: Address) -> Address:
        return self.nats[side].outbound(observer)

    def send(self, now: float, side: str, dest: Address) -> None:
        source = self.nats[side].outbound(dest)
        other = "b" if side == "a" else "a"
        if dest.host != self.nats[other].public_host:
            return
        heapq.heappush(self.queue, (now + 0.01, next(self.seq), other, source))

    def run(self, punchers: dict[str, Puncher], schedules: dict[str, list[tuple[float, Address]]]) -> None:
        for side, sched in schedules.items():
            for t, addr in sched:
                heapq.heappush(self.queue, (t, next(self.seq), "send:" + side, addr))
        while self.queue:
            now, _, kind, addr = heapq.heappop(self.queue)
            if kind.startswith("send:"):
                side = kind[5:]
                if punchers[side].punching and not punchers[side].connected:
                    self.send(now, side, addr)
                continue
            if not self.nats[kind].admits(addr):
                continue  # dropped by the NAT: nobody inside sent there yet
            self.delivered.append((kind, addr))
            if punchers[kind].on_probe(addr):
                self.send(now, kind, addr)


def _sampled(world: World, side: str) -> NatSampler:
    nat = NatSampler()
    for i in range(4):
        nat.add(world.public_seen_by(side, A("9.9.9.9", 100 + i)), A("9.9.9.9", 100 + i))
    return nat


def _punchers(world: World) -> tuple[Puncher, Puncher]:
    nat_a, nat_b = _sampled(world, "a"), _sampled(world, "b")
    a = Puncher(True, nat_a, nat_b.firewall)
    b = Puncher(False, nat_b, nat_a.firewall)
    # what the holepunch rounds carry: each side's sampled addresses (secure payloads, below)
    hp_secret = _handshake_secret()
    box_a, box_b = SecurePayload(hp_secret), SecurePayload(hp_secret)

    def state(nat: NatSampler) -> m.HolepunchPayload:
        return m.HolepunchPayload(firewall=nat.firewall, punching=True, addresses=tuple(nat.addresses or ()))

    from_a = box_b.decrypt(box_a.encrypt(state(nat_a)))
    from_b = box_a.decrypt(box_b.encrypt(state(nat_b)))
    assert from_a is not None and from_b is not None
    b.update_remote(punching=True, firewall=from_a.firewall, addresses=from_a.addresses, verified=None)
    a.update_remote(punching=True, firewall=from_b.firewall, addresses=from_b.addresses, verified=None)
    return a, b


def _handshake_secret() -> bytes:
    server = NoiseKeyPair.from_seed(b"\x02" * 32)
    client = NoiseWrap(NoiseKeyPair.from_seed(b"\x01" * 32), server.public_key)
    srv = NoiseWrap(server)
    srv.recv(client.send(m.NoisePayload(udx=m.UdxInfo(1, 0))))
    client.recv(srv.send(m.NoisePayload(udx=m.UdxInfo(2, 0))))
    assert client.final().holepunch_secret == srv.final().holepunch_secret
    return client.final().holepunch_secret


def test_in_memory_consistent_nats_punch_through() -> None:
    world = World(FakeNat("1.0.0.1", False, 4000), FakeNat("2.0.0.2", False, 5000))
    a, b = _punchers(world)
    assert a.strategy() is Strategy.CONSISTENT and b.strategy() is Strategy.CONSISTENT
    a.punching = b.punching = True
    world.run(
        {"a": a, "b": b},
        {
            "a": consistent_probe_schedule(a.remote_addresses, is_initiator=True),
            "b": consistent_probe_schedule(b.remote_addresses, is_initiator=False),
        },
    )
    assert a.connected  # the initiator took the first probe that got through as its path
    assert ("a", A("2.0.0.2", 5000)) in world.delivered


def test_in_memory_random_nat_is_not_punched_by_consistent_probes() -> None:
    world = World(FakeNat("1.0.0.1", False, 4000), FakeNat("2.0.0.2", True, 5000))
    a, b = _punchers(world)
    assert b.nat.firewall == FIREWALL_RANDOM
    assert a.strategy() is Strategy.NONE  # no verified address: nothing to guess around
    a.update_remote(punching=True, firewall=FIREWALL_RANDOM, addresses=b.nat.addresses, verified="2.0.0.2")
    assert a.strategy() is Strategy.RANDOM_PROBES  # needs port guessing: see the tests below
    a.punching = b.punching = True
    world.run(
        {"a": a, "b": b},
        {
            "a": consistent_probe_schedule(a.remote_addresses, is_initiator=True),
            "b": consistent_probe_schedule(b.remote_addresses, is_initiator=False),
        },
    )
    assert not a.connected


def test_random_probe_schedule_guesses_a_fresh_port_every_20_ms() -> None:
    sched = list(random_probe_schedule("2.0.0.2", random.Random(7)))
    assert len(sched) == RANDOM_PROBE_TRIES
    assert [round(t, 6) for t, _ in sched[:3]] == [0.0, 0.02, 0.04]
    assert round(sched[-1][0], 6) == round((RANDOM_PROBE_TRIES - 1) * 0.02, 6)  # ~35 s in all
    ports = [addr.port for _, addr in sched]
    assert {addr.host for _, addr in sched} == {"2.0.0.2"}
    assert min(ports) >= 1000 and max(ports) <= 65535
    assert len(set(ports)) > RANDOM_PROBE_TRIES * 0.9  # guesses, not a sweep of a few ports
    assert sched == list(random_probe_schedule("2.0.0.2", random.Random(7)))


def test_birthday_schedule_opens_every_socket_then_keeps_them_alive() -> None:
    sched = list(birthday_schedule(4, tries=10))
    # every socket fires once at once with the low TTL (each opens a mapping in our NAT) ...
    assert sched[:4] == [(0.0, 0, True), (0.0, 1, True), (0.0, 2, True), (0.0, 3, True)]
    keep = sched[4:]
    # ... then after 100 ms they take turns every 20 ms, the first full turn still low
    assert [i for _, i, _ in keep] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert [low for _, _, low in keep] == [True] * 4 + [False] * 6
    assert [round(t, 6) for t, _, _ in keep[:3]] == [0.1, 0.12, 0.14]
    full = list(birthday_schedule())
    assert len(full) == BIRTHDAY_SOCKETS + RANDOM_PROBE_TRIES
    assert max(i for _, i, _ in full) == BIRTHDAY_SOCKETS - 1


def test_random_punches_are_rationed_one_at_a_time_and_20_s_apart() -> None:
    ration = RandomPunches(interval=20.0)
    assert ration.allowed(0.0)
    ration.begin()
    assert not ration.allowed(1.0)  # one at a time
    ration.end(5.0)
    assert not ration.allowed(24.9) and ration.allowed(25.0)  # 20 s after the last one ended
    deferred = RandomPunches(interval=20.0, now=100.0, defer=True)
    assert not deferred.allowed(110.0) and deferred.allowed(120.0)  # a fresh node waits as well


class RandomWorld:
    """The NATs of a port-keeping side "c" (one socket) and a port-randomizing side "r" (any
    number of sockets, a fresh public port per socket and destination). Both filter by
    endpoint: a packet gets in only from an address the socket behind has sent to."""

    C_HOST, C_PORT, R_HOST = "1.0.0.1", 4000, "2.0.0.2"

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.c_opened: set[Address] = set()
        self.r_mapping: dict[tuple[int, Address], int] = {}  # (socket, destination) -> public port
        self.r_ports: dict[int, tuple[int, Address]] = {}  # public port -> (socket, destination)
        self.seq = itertools.count()
        self.hits: list[tuple[str, int, Address]] = []

    def r_public(self, socket: int, dest: Address) -> Address:
        port = self.r_mapping.get((socket, dest))
        if port is None:
            port = self.rng.randrange(1000, 65536)
            while port in self.r_ports:
                port = self.rng.randrange(1000, 65536)
            self.r_mapping[(socket, dest)] = port
            self.r_ports[port] = (socket, dest)
        return A(self.R_HOST, port)


def _random_world_punch(c_initiates: bool, seed: int) -> tuple[bool, float, int]:
    """Run the guessing side (c) against the birthday side (r) in simulated time, 10 ms a
    hop; low-TTL probes open the sender's mapping but never arrive. Returns (connected,
    when, probes that got through)."""
    world = RandomWorld(seed)
    c_address, r_verified = A(world.C_HOST, world.C_PORT), A(world.R_HOST, 0)
    c = Puncher(c_initiates, _nat_of(FIREWALL_CONSISTENT, c_address))
    r = Puncher(not c_initiates, _nat_of(FIREWALL_RANDOM, A(world.R_HOST, 9999)))
    c.update_remote(punching=True, firewall=FIREWALL_RANDOM, addresses=[r_verified], verified=world.R_HOST)
    r.update_remote(punching=True, firewall=FIREWALL_CONSISTENT, addresses=[c_address], verified=world.C_HOST)
    assert c.strategy() is Strategy.RANDOM_PROBES and r.strategy() is Strategy.BIRTHDAY
    c.punching = r.punching = True
    events: list[tuple[float, int, str, int, Address, bool]] = []
    for t, addr in random_probe_schedule(world.R_HOST, random.Random(seed + 1)):
        heapq.heappush(events, (t, next(world.seq), "send-c", 0, addr, False))
    for t, index, low in birthday_schedule():
        heapq.heappush(events, (t, next(world.seq), "send-r", index, c_address, low))
    initiator = c if c_initiates else r
    while events and not initiator.connected:
        now, _, kind, socket, addr, low = heapq.heappop(events)
        if kind == "send-c":
            world.c_opened.add(addr)
            if addr.host == world.R_HOST and addr.port in world.r_ports:
                inside, allowed = world.r_ports[addr.port]
                if allowed == c_address:  # r's NAT lets c in only where that socket sent to c
                    heapq.heappush(events, (now + 0.01, next(world.seq), "at-r", inside, c_address, False))
        elif kind == "send-r":
            source = world.r_public(socket, addr)
            if not low and source in world.c_opened:  # c's NAT: only from where c sent to
                heapq.heappush(events, (now + 0.01, next(world.seq), "at-c", 0, source, False))
        elif kind == "at-r":
            world.hits.append(("r", socket, addr))
            if r.on_probe(addr):
                heapq.heappush(events, (now, next(world.seq), "send-r", socket, addr, False))
        else:
            world.hits.append(("c", socket, addr))
            if c.on_probe(addr):
                heapq.heappush(events, (now, next(world.seq), "send-c", 0, addr, False))
    return initiator.connected, now, len(world.hits)


def _nat_of(kind: int, seen_as: Address) -> NatSampler:
    nat = NatSampler()
    for i in range(4):
        port = seen_as.port if kind == FIREWALL_CONSISTENT else seen_as.port + i
        nat.add(A(seen_as.host, port), A("9.9.9.9", 100 + i))
    assert nat.firewall == kind
    return nat


@pytest.mark.parametrize("c_initiates", [True, False], ids=["guesser-initiates", "birthday-initiates"])
@pytest.mark.parametrize("seed", range(5))
def test_in_memory_guessing_meets_birthday_sockets(c_initiates: bool, seed: int) -> None:
    """A consistent NAT meets a randomizing one: the first guess that lands on one of the 256
    mappings gets through, the responder answers from that very socket, and the initiator is
    connected well within the ~35 s the schedules run."""
    connected, when, hits = _random_world_punch(c_initiates, seed)
    assert connected and hits >= 1
    assert when < 35.0


def test_in_memory_birthday_sockets_alone_do_not_get_through() -> None:
    """Without the other side's guesses nothing arrives: the keep-alives reach only a NAT that
    never sent to those ports (this is what makes the guessing necessary)."""
    world = RandomWorld(1)
    c_address = A(world.C_HOST, world.C_PORT)
    arrived = 0
    for _t, index, _low in birthday_schedule():
        if world.r_public(index, c_address) in world.c_opened:
            arrived += 1
    assert arrived == 0 and len(world.r_ports) == BIRTHDAY_SOCKETS
    assert HOLEPUNCH_TTL < 64
