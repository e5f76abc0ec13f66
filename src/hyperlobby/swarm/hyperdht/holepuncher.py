"""Holepunching, sans-IO: NAT analysis, the connect-path decisions and the punch schedule.

Theory of operation
-------------------
Two peers behind NATs reach each other by sending UDP packets to each other's *public*
addresses at about the same time, so each NAT sees an outgoing packet first and lets the
answer in. hyperdht coordinates this through the DHT: PEER_HOLEPUNCH rounds, relayed by the
node the server announced through, carry each side's NAT kind and public addresses (sealed
with :mod:`~hyperlobby.swarm.hyperdht.secure_payload`). Then both send 1-byte probes.

This module keeps every decision free of sockets and clocks, mirroring hyperdht's
holepuncher.js / nat.js / the branches of connect.js and server.js:

* :class:`NatSampler` learns our NAT kind from how DHT nodes saw one socket (``reply.to``):
  the same address from 3+ nodes is CONSISTENT, all different is RANDOM.
* :func:`client_path` and :func:`server_path` pick what happens after the PEER_HANDSHAKE:
  connect straight to an OPEN peer, take the same-host/LAN shortcut, wait for an OPEN client
  to connect to us, or holepunch.
* :class:`Puncher` holds one side's punching state (the remote's reported NAT, addresses and
  whether it is punching) and says which strategy to run. Each strategy is a schedule:
  :func:`consistent_probe_schedule` when both NATs keep a port per socket;
  :func:`random_probe_schedule` when only the remote's NAT picks a fresh port per
  destination (we guess ports on its host); :func:`birthday_schedule` when ours does (we
  open many sockets toward its one address, so some guess of the remote lands on one of
  our mappings: 256 mappings among ~64k ports make a hit within ~1750 guesses all but
  certain). Both NATs randomizing cannot work. :class:`RandomPunches` rations the noisy
  random strategies per node, as JS does: one at a time, 20 s apart.

The asyncio side (connect.py/server.py) sends what these decide. Tests drive them with
in-memory packets.
"""

from __future__ import annotations

import enum
import ipaddress
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from hyperlobby.swarm.dht_rpc import Address
from hyperlobby.swarm.hyperdht import messages as m
from hyperlobby.swarm.hyperdht.constants import (
    FIREWALL_CONSISTENT,
    FIREWALL_OPEN,
    FIREWALL_RANDOM,
    FIREWALL_UNKNOWN,
)

HOLEPUNCH_PROBE = b"\x00"  # a probe is one zero byte (dht-rpc and UDX never send 1-byte datagrams)
# The birthday sockets' first probes go out with TTL 5, as in JS: enough hops to open our own
# NAT's mapping, too few to reach the remote NAT, which might otherwise ban the early
# unsolicited packets. Everything else uses the default TTL.
HOLEPUNCH_TTL = 5
DEFAULT_TTL = 64
MIN_SAMPLES = 4
CONSISTENT_PROBE_TRIES = 10
PROBE_INTERVAL = 1.0
RANDOM_PROBE_TRIES = 1750  # ~35 s of guesses (or birthday keep-alives) at 20 ms
RANDOM_PROBE_INTERVAL = 0.02
BIRTHDAY_SOCKETS = 256  # our punch socket included
BIRTHDAY_SETTLE = 0.1  # pause between opening the birthday sockets and keeping them alive
RANDOM_PUNCH_LIMIT = 1  # random punches a node runs at once (JS: "one for extra safety")
RANDOM_PUNCH_INTERVAL = 20.0  # seconds between one random punch's end and the next one's start
MIN_RANDOM_PORT = 1000  # guessed ports are 1000..65535, as in JS


def is_private(host: str) -> bool:
    """bogon's ``isPrivate``: loopback, RFC 1918, CGNAT and link-local IPv4."""
    try:
        ip = ipaddress.IPv4Address(host)
    except ValueError:
        return False
    a, b = ip.packed[0], ip.packed[1]
    return (
        a == 10
        or (a == 100 and 64 <= b <= 127)
        or a == 127
        or (a == 169 and b == 254)
        or (a == 172 and 16 <= b <= 31)
        or (a == 192 and b == 168)
    )


def is_reserved(host: str) -> bool:
    """bogon's ``isReserved`` for IPv4 (loopback is *private*, not reserved)."""
    try:
        p = ipaddress.IPv4Address(host).packed
    except ValueError:
        return True
    return (
        p[0] == 0
        or (p[0] == 192 and p[1] == 0 and p[2] in (0, 2))
        or (p[0] == 198 and p[1] in (18, 19))
        or (p[0] == 198 and p[1] == 51 and p[2] == 100)
        or (p[0] == 203 and p[1] == 0 and p[2] == 113)
        or p[0] >= 224
    )


def is_bogon(host: str) -> bool:
    return is_private(host) or is_reserved(host)


def local_addresses(host: str, port: int, interfaces: Sequence[str] = ()) -> list[Address]:
    """The addresses we tell a peer on our LAN to try (holepuncher.js ``localAddresses``).

    A socket bound to 127.0.0.1 only offers that; otherwise every non-internal IPv4 interface
    address with our port, or loopback when there is none.
    """
    if host == "127.0.0.1":
        return [Address(host, port)]
    out = [Address(h, port) for h in interfaces if not h.startswith("127.")]
    return out or [Address("127.0.0.1", port)]


def match_address(mine: Sequence[Address], theirs: Sequence[Address]) -> Address | None:
    """The remote LAN address sharing the longest dotted prefix with one of ours (JS matchAddress).

    A full /24 match wins at once; otherwise the best /16, then /8 match; None if no first
    octet matches.
    """
    if not theirs:
        return None
    best_segments, best = 1, None
    for local in mine:
        a = local.host.split(".")
        for remote in theirs:
            b = remote.host.split(".")
            if a[0] != b[0]:
                continue
            if best_segments == 1:
                best_segments, best = 2, remote
            if a[1] == b[1]:
                if best_segments == 2:
                    best_segments, best = 3, remote
                if a[2] == b[2]:
                    return remote
    return best


def coerce_firewall(firewall: int) -> int:
    """OPEN behaves like CONSISTENT for punching."""
    return FIREWALL_CONSISTENT if firewall == FIREWALL_OPEN else firewall


# --- NAT analysis -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Sample:
    host: str
    port: int
    hits: int = 1


@dataclass(slots=True)
class NatSampler:
    """How one socket looks from outside, from the ``to`` field of DHT replies (nat.js).

    ``firewalled=False`` (our node is reachable) makes the answer OPEN at once. Otherwise the
    kind stays UNKNOWN until 3 samples: a top address seen 3+ times is CONSISTENT, every sample
    different is RANDOM, and two hits needs a second host to decide. ``settled`` says whether
    a caller waiting for the analysis (JS ``analyzing``) may stop waiting.
    """

    firewalled: bool = True
    min_samples: int = MIN_SAMPLES
    firewall: int = FIREWALL_UNKNOWN
    addresses: list[Address] | None = None
    sampled: int = 0
    frozen: bool = False
    settled: bool = False
    _hosts: list[_Sample] = field(default_factory=list)
    _full: list[_Sample] = field(default_factory=list)
    _seen: set[Address] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not self.firewalled:
            self.firewall = FIREWALL_OPEN

    def add(self, seen_as: Address, sampled_by: Address) -> None:
        """Node ``sampled_by`` saw our socket as ``seen_as`` (each node counts once)."""
        if sampled_by in self._seen:
            return
        self._seen.add(sampled_by)
        _add_sample(self._hosts, seen_as.host, 0)
        _add_sample(self._full, seen_as.host, seen_as.port)
        self.sampled += 1
        if (self.sampled >= 3 or not self.firewalled) and not self.frozen:
            self.update()
        if self.firewall in (FIREWALL_CONSISTENT, FIREWALL_OPEN) or self.sampled >= self.min_samples:
            self.settled = True

    def give_up(self) -> None:
        """No more samples will come (all pings answered or failed): stop waiting."""
        self.settled = True

    def freeze(self) -> None:
        """Keep the current verdict: it was already sent to the peer."""
        self.frozen = True

    def unfreeze(self) -> None:
        self.frozen = False
        self.update()

    def update(self) -> None:
        if self.firewalled and self.firewall == FIREWALL_OPEN:
            self.firewall = FIREWALL_UNKNOWN
        self._update_firewall()
        self._update_addresses()

    def _update_firewall(self) -> None:
        if not self.firewalled:
            self.firewall = FIREWALL_OPEN
            return
        if self.sampled < 3:
            return
        top = self._full[0].hits
        if top >= 3:
            self.firewall = FIREWALL_CONSISTENT
        elif top == 1 or (len(self._hosts) == 1 and self.sampled > 3):
            self.firewall = FIREWALL_RANDOM
        elif len(self._hosts) > 1 and self._full[1].hits > 1:
            self.firewall = FIREWALL_CONSISTENT
        elif self.sampled > 4:
            self.firewall = FIREWALL_RANDOM

    def _update_addresses(self) -> None:
        if self.firewall == FIREWALL_UNKNOWN:
            self.addresses = None
        elif self.firewall == FIREWALL_RANDOM:
            self.addresses = [Address(self._hosts[0].host, 0)]
        elif self.firewall == FIREWALL_CONSISTENT:
            out: list[Address] = []
            for s in self._full:
                if s.hits >= 2 or len(out) < 2:
                    out.append(Address(s.host, s.port))
            self.addresses = out


def _add_sample(samples: list[_Sample], host: str, port: int) -> None:
    for i, s in enumerate(samples):
        if s.host != host or s.port != port:
            continue
        s.hits += 1
        while i > 0 and samples[i - 1].hits < s.hits:  # keep most-hit first
            samples[i - 1], samples[i] = samples[i], samples[i - 1]
            i -= 1
        return
    samples.append(_Sample(host, port))


# --- which path a connection takes ---------------------------------------------------------------


class ClientPath(enum.Enum):
    DIRECT = "direct"  # connect the stream to ``address`` now
    LAN = "lan"  # only the same-host/LAN shortcut: ping ``lan_ping``, connect if it answers
    PASSIVE = "passive"  # we are OPEN: the server connects to us; wait (10 s in JS)
    HOLEPUNCH = "holepunch"  # run PEER_HOLEPUNCH rounds through the server's relay
    CANNOT = "cannot"  # no way to reach the server


@dataclass(frozen=True, slots=True)
class ClientPlan:
    path: ClientPath
    address: Address | None = None  # DIRECT: where to connect
    lan_ping: Address | None = None  # also try this same-host/LAN address (ping, then connect)


def client_path(
    payload: m.NoisePayload,
    *,
    server_address: Address,
    relay_address: Address,
    client_address: Address,
    own_firewall: int,
    lan: bool = True,
    my_local_addresses: Sequence[Address] = (),
) -> ClientPlan:
    """connect.js ``holepunch()``: what a client does once the handshake is through.

    ``server_address`` is where the relay saw the server, ``relay_address`` the node we sent
    PEER_HANDSHAKE to (equal when we reached the server directly), ``client_address`` how that
    node saw us. A server that is OPEN (or relayed and not offering to holepunch) is dialled
    at its first public address, else at the address the relay saw. A server on our own host
    (same public IP) gets a LAN ping at its best-matching local address, raced with the
    holepunch when it offers one.
    """
    holepunchable = payload.holepunch is not None and len(payload.holepunch.relays) > 0
    relayed = server_address != relay_address
    if payload.firewall == FIREWALL_OPEN or (relayed and not holepunchable):
        addr = next((a for a in payload.addresses4 if not is_bogon(a.host)), server_address)
        return ClientPlan(ClientPath.DIRECT, addr)
    if own_firewall == FIREWALL_OPEN:
        return ClientPlan(ClientPath.PASSIVE)
    lan_ping: Address | None = None
    if lan and relayed and client_address.host == server_address.host:
        candidates = [a for a in payload.addresses4 if not is_reserved(a.host)]
        if candidates:
            lan_ping = match_address(my_local_addresses, candidates) or candidates[0]
    if not holepunchable:
        if lan_ping is not None:
            return ClientPlan(ClientPath.LAN, None, lan_ping)
        return ClientPlan(ClientPath.CANNOT)
    return ClientPlan(ClientPath.HOLEPUNCH, None, lan_ping)


class ServerPath(enum.Enum):
    CONNECT = "connect"  # connect the stream to the client now (it is OPEN or came directly)
    PREPUNCH_LAN = "prepunch-lan"  # same host: expect the client's LAN shortcut, puncher ready
    WAIT = "wait"  # we are OPEN (or never punch): the client connects to us
    HOLEPUNCH = "holepunch"  # answer PEER_HOLEPUNCH rounds with a puncher


def server_path(
    remote: m.NoisePayload,
    *,
    direct: bool,
    client_address: Address,
    server_address: Address,
    our_remote_address: Address | None,
    my_local_addresses: Sequence[Address],
    share_local_address: bool = True,
    never_punch: bool = False,
) -> ServerPath:
    """server.js ``_addHandshake`` after the reply is sent: how the connection will form."""
    if remote.firewall == FIREWALL_OPEN or direct:
        return ServerPath.CONNECT
    if client_address.host == server_address.host and share_local_address:
        theirs = [a for a in remote.addresses4 if is_private(a.host)]
        if theirs and match_address(my_local_addresses, theirs) is not None:
            return ServerPath.PREPUNCH_LAN
    if our_remote_address is not None or never_punch:
        return ServerPath.WAIT
    return ServerPath.HOLEPUNCH


# --- punching ------------------------------------------------------------------------------------


class Strategy(enum.Enum):
    NONE = "none"  # nothing can work (or nothing to punch to)
    CONSISTENT = "consistent"  # both sides keep ports: probe the remote's addresses
    RANDOM_PROBES = "random-probes"  # remote randomizes: guess its ports (we are consistent)
    BIRTHDAY = "birthday"  # we randomize: open many sockets toward its one address


@dataclass(frozen=True, slots=True)
class RemoteAddress:
    host: str
    port: int
    verified: bool = False


class Puncher:
    """One side's view of a holepunch in progress (holepuncher.js without its sockets)."""

    def __init__(self, is_initiator: bool, nat: NatSampler, remote_firewall: int = FIREWALL_UNKNOWN) -> None:
        self.is_initiator = is_initiator
        self.nat = nat
        self.remote_firewall = remote_firewall
        self.remote_addresses: list[RemoteAddress] = []
        self.remote_holepunching = False
        self.punching = False
        self.connected = False
        self.destroyed = False

    def update_remote(
        self,
        *,
        punching: bool,
        firewall: int,
        addresses: Sequence[Address] | None,
        verified: str | None,
    ) -> None:
        """Take the remote's latest holepunch payload; ``verified`` is a host proven by token echo."""
        previously = {a.host for a in self.remote_addresses if a.verified}
        self.remote_addresses = [
            RemoteAddress(a.host, a.port, a.host == verified or a.host in previously) for a in addresses or ()
        ]
        self.remote_firewall = firewall
        self.remote_holepunching = punching

    def unstable(self) -> bool:
        """Our NAT is unknown, or both sides randomize (nothing can meet)."""
        fw = self.nat.firewall
        return (self.remote_firewall >= FIREWALL_RANDOM and fw >= FIREWALL_RANDOM) or fw == FIREWALL_UNKNOWN

    def strategy(self) -> Strategy:
        """What :meth:`punch` runs, decided from both NAT kinds (JS ``_punch``)."""
        if self.destroyed or self.connected or not self.remote_addresses:
            return Strategy.NONE
        local = coerce_firewall(self.nat.firewall)
        remote = coerce_firewall(self.remote_firewall)
        if local == FIREWALL_CONSISTENT and remote == FIREWALL_CONSISTENT:
            return Strategy.CONSISTENT
        if not any(a.verified for a in self.remote_addresses):
            return Strategy.NONE
        if local == FIREWALL_CONSISTENT and remote >= FIREWALL_RANDOM:
            return Strategy.RANDOM_PROBES
        if local >= FIREWALL_RANDOM and remote == FIREWALL_CONSISTENT:
            return Strategy.BIRTHDAY
        return Strategy.NONE

    def verified_address(self) -> RemoteAddress | None:
        return next((a for a in self.remote_addresses if a.verified), None)

    def on_probe(self, source: Address) -> bool:
        """A 1-byte probe arrived from ``source``. The responder echoes it (return True: send a
        probe back); the initiator takes the first one as the path and is connected."""
        if self.destroyed:
            return False
        if not self.is_initiator:
            return True
        if not self.connected:
            self.connected = True
            self.punching = False
        return False


def consistent_probe_schedule(
    remote_addresses: Sequence[RemoteAddress], *, is_initiator: bool, tries: int = CONSISTENT_PROBE_TRIES
) -> list[tuple[float, Address]]:
    """(delay from start, address) of each probe in the consistent case (JS ``_consistentProbe``).

    The responder waits a second first (the server already fired a "fast open" ping). Each
    round probes verified addresses every time and unverified ones every fourth round, one
    round a second, for ``tries`` rounds.
    """
    out: list[tuple[float, Address]] = []
    t = 0.0 if is_initiator else PROBE_INTERVAL
    for attempt in range(1, tries + 1):
        for addr in remote_addresses:
            if not addr.verified and (attempt & 3) != 0:
                continue
            out.append((t, Address(addr.host, addr.port)))
        t += PROBE_INTERVAL
    return out


def random_probe_schedule(
    host: str, rng: random.Random, *, tries: int = RANDOM_PROBE_TRIES
) -> Iterator[tuple[float, Address]]:
    """(delay from start, address) of each guess at a randomizing NAT's port on ``host``:
    one every 20 ms, a fresh random port each time (JS ``_randomProbes``)."""
    for attempt in range(tries):
        yield attempt * RANDOM_PROBE_INTERVAL, Address(host, rng.randrange(MIN_RANDOM_PORT, 65536))


def birthday_schedule(
    sockets: int = BIRTHDAY_SOCKETS, *, tries: int = RANDOM_PROBE_TRIES
) -> Iterator[tuple[float, int, bool]]:
    """(delay from start, socket index, low TTL) of each probe toward the remote's one
    address when our NAT randomizes (JS ``_openBirthdaySockets`` + ``_keepAliveRandomNat``).

    Socket 0 is the punch socket we already have; the others are opened as the schedule
    first names them. Every socket probes once at once with the low TTL (each probe makes a
    mapping in our NAT); after a short pause they take turns every 20 ms, the first full
    turn still with the low TTL and the rest with the default one.
    """
    for index in range(sockets):
        yield 0.0, index, True
    t = BIRTHDAY_SETTLE
    index = 0
    low_rounds = 1
    for _ in range(tries):
        if index == sockets:
            index = 0
            low_rounds = max(0, low_rounds - 1)
        yield t, index, low_rounds > 0
        index += 1
        t += RANDOM_PROBE_INTERVAL


class RandomPunches:
    """A node's ration of random punches (JS ``dht._randomPunches`` and ``_lastRandomPunch``).

    Guessing ports or opening hundreds of sockets is noisy for both NATs and the network, so
    a node runs at most ``limit`` such punches at once and starts the next one only
    ``interval`` seconds after the previous one ended (``defer`` counts from creation, so a
    fresh node waits too).
    """

    def __init__(
        self,
        *,
        limit: int = RANDOM_PUNCH_LIMIT,
        interval: float = RANDOM_PUNCH_INTERVAL,
        now: float = 0.0,
        defer: bool = False,
    ) -> None:
        self.limit = limit
        self.interval = interval
        self.active = 0
        self.last = now if defer else float("-inf")

    def allowed(self, now: float) -> bool:
        return self.active < self.limit and now - self.last >= self.interval

    def begin(self) -> None:
        self.active += 1

    def end(self, now: float) -> None:
        self.active = max(0, self.active - 1)
        self.last = now


__all__ = [
    "BIRTHDAY_SOCKETS",
    "DEFAULT_TTL",
    "HOLEPUNCH_PROBE",
    "HOLEPUNCH_TTL",
    "ClientPath",
    "ClientPlan",
    "NatSampler",
    "Puncher",
    "RandomPunches",
    "RemoteAddress",
    "ServerPath",
    "Strategy",
    "birthday_schedule",
    "client_path",
    "coerce_firewall",
    "consistent_probe_schedule",
    "is_bogon",
    "is_private",
    "is_reserved",
    "local_addresses",
    "match_address",
    "random_probe_schedule",
    "server_path",
]
