"""asyncio dht-rpc node: a Kademlia RPC endpoint on a UDP socket, wire-compatible with JS.

Theory of operation
-------------------
A :class:`DhtNode` owns (or borrows) one :class:`~hyperlobby.swarm.udx.UdxSocket`. dht-rpc
datagrams are what the socket's UDX router does not claim (``on_message``), so HyperDHT can
later run UDX streams on the same port. JS dht-rpc always uses two sockets (a "client" one
that firewalled nodes send from, and a "server" one); one is enough unless the node has to
find out whether it is reachable, so only ``adaptive`` nodes bind the second (see below).
Requests are answered from the socket they arrived on.

Outgoing requests get a 16-bit transaction id and wait for the response with that id from the
host they were sent to (JS checks only the id; the port may differ when HyperDHT answers from
another socket of the same node). Each try waits ``request_timeout`` seconds; after ``retries``
resends the request fails with :class:`RequestTimeout` (and, if the peer was in our table,
it is dropped, as in JS). Incoming requests are answered from the routing table (FIND_NODE),
directly (PING, PING_NAT, DOWN_HINT, DELAYED_PING), or handed to :attr:`DhtNode.on_request`
for application commands (HyperDHT's ANNOUNCE, LOOKUP, ...).

Identity: an *ephemeral* node (the default, as for a freshly started JS node) sends no id, so
others never add it to their tables; it only consumes the DHT. A *persistent* node
(``ephemeral=False``) sends ``id = BLAKE2b(ip ‖ port)`` of the address peers see, which they
verify against the datagram's source and then add to their tables. Persistence is either
chosen up front (``ephemeral=False``: the caller knows the node is reachable, as on loopback)
or earned: an ``adaptive=True`` node also binds a client socket, as JS does, sends from it
while firewalled, and :meth:`DhtNode.update_network_state` asks peers (PING_NAT) to answer
on the server port; if they get through, the node turns persistent. JS runs that check on its
own after ~20 stable minutes; here the caller decides when. :meth:`DhtNode.bootstrapper`
makes a persistent, unfirewalled node meant to be listed in others' bootstrap lists.

Tokens: a response to a request carries a token = keyed BLAKE2b of the requester's IP under a
secret that rotates every 7.5 s (the previous secret stays valid for one more period). A later
request carrying a token is checked against both; a wrong token gets ERROR_INVALID_TOKEN. This
proves the requester can receive at its claimed IP, which HyperDHT's ANNOUNCE relies on.

Our public address: every reply's ``to`` field is a vote fed to a :class:`NatSampler`
(new table nodes, known ones every ~30 min of ticks, and as many id-less peers as we have
bootstrap addresses), giving :attr:`DhtNode.host`/:attr:`DhtNode.port` as JS exposes them.

Bootstrap addresses are never implied: a node only talks to what it is told about
(``bootstrap=``) and to the nodes those return. Background work (refreshing the table,
re-pinging stale entries) runs on a tick task that is cancelled by :meth:`DhtNode.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from hyperlobby.errors import DecodeError, EncodeError, HyperlobbyError, ProtocolError
from hyperlobby.swarm.dht_rpc.congestion import DEFAULT_MAX_WINDOW, DRAIN_INTERVAL, CongestionWindow
from hyperlobby.swarm.dht_rpc.messages import (
    DELAYED_PING,
    DOWN_HINT,
    ERROR_INVALID_TOKEN,
    ERROR_UNKNOWN_COMMAND,
    FIND_NODE,
    PING,
    PING_NAT,
    Address,
    Request,
    Response,
    decode_message,
    encode_down_hint,
    encode_port,
    encode_request,
    encode_response,
    make_token,
    peer_id,
)
from hyperlobby.swarm.dht_rpc.nat import NatSampler
from hyperlobby.swarm.dht_rpc.query import Query, QueryReply
from hyperlobby.swarm.dht_rpc.routing import K, RoutingNode, RoutingTable
from hyperlobby.swarm.udx import UdxSocket

DEFAULT_REQUEST_TIMEOUT: Final = 1.0
DEFAULT_RETRIES: Final = 3
DEFAULT_QUERY_RETRIES: Final = 2
DEFAULT_CONCURRENCY: Final = 10
DEFAULT_QUERY_TIMEOUT: Final = 20.0
SECRET_ROTATION: Final = 7.5
TICK_INTERVAL: Final = 5.0
MAX_PING_DELAY: Final = 10.0
MAX_INFLIGHT: Final = 4096
MAX_CHECKS: Final = 10
RECENT_NODE_TICKS: Final = 12  # heard from in the last ~minute
OLD_NODE_TICKS: Final = 360  # re-sample a known node's view of us after ~30 min of ticks

AddressLike = Address | tuple[str, int] | str


class RequestTimeout(ProtocolError):
    """A request got no response after all its retries."""


class RequestDestroyed(ProtocolError):
    """The node was closed while the request was waiting."""


def parse_address(value: AddressLike) -> Address:
    """``Address``, ``(host, port)`` or ``"host:port"`` (IPv4 only, as dht-rpc's wire format)."""
    if isinstance(value, Address):
        return value
    if isinstance(value, tuple):
        return Address(value[0], int(value[1]))
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise EncodeError("node address must be host:port", value=value)
    return Address(host, int(port))


@dataclass(frozen=True, slots=True)
class Reply:
    """A response to one of our requests, with the address it came from and the id it proved."""

    address: Address
    id: bytes | None
    response: Response
    rtt: float
    on_server: bool = True  # arrived on the server socket (False: on an adaptive node's client socket)

    @property
    def error(self) -> int:
        return self.response.error

    @property
    def value(self) -> bytes | None:
        return self.response.value

    @property
    def token(self) -> bytes | None:
        return self.response.token

    @property
    def closer_nodes(self) -> tuple[Address, ...]:
        return self.response.closer_nodes

    @property
    def to(self) -> Address:
        """How the responder saw us (our address from its side of any NAT)."""
        return self.response.to


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """An application (non-internal) request; answer with :meth:`reply` or :meth:`error`."""

    address: Address
    id: bytes | None
    request: Request
    node: DhtNode = field(repr=False, compare=False)
    via: UdxSocket | None = field(default=None, repr=False, compare=False)

    @property
    def command(self) -> int:
        return self.request.command

    @property
    def target(self) -> bytes | None:
        return self.request.target

    @property
    def value(self) -> bytes | None:
        return self.request.value

    @property
    def token(self) -> bytes | None:
        """The token the requester echoed back (already verified when present)."""
        return self.request.token

    def reply(
        self,
        value: bytes | None = None,
        *,
        token: bool = True,
        closer_nodes: bool = True,
        to: Address | None = None,
        socket: UdxSocket | None = None,
    ) -> None:
        """Answer (by default to the sender; ``to`` answers someone else with this tid).

        ``socket`` sends from another socket than the one the request came in on (HyperDHT
        servers answer handshakes from the socket they will connect from).
        """
        self.node._send_reply(
            self.request, to or self.address, 0, value, token, closer_nodes, socket or self.via
        )

    def error(
        self,
        code: int,
        *,
        token: bool = False,
        closer_nodes: bool = True,
        to: Address | None = None,
        socket: UdxSocket | None = None,
    ) -> None:
        self.node._send_reply(
            self.request, to or self.address, code, None, token, closer_nodes, socket or self.via
        )

    def relay(self, value: bytes | None, to: Address, *, socket: UdxSocket | None = None) -> None:
        """Forward this request (same tid, command and target, new value) to ``to``.

        HyperDHT's handshake and holepunch messages travel client -> relay -> server and back
        this way; whoever ends the chain answers the original requester with ``reply(to=...)``.
        It leaves from ``socket`` if given, else from the socket the request arrived on.
        """
        self.node._relay(self.request, value, to, socket or self.via)


RequestHandler = Callable[[IncomingRequest], bool | None]


@dataclass(eq=False)
class _Inflight:
    tid: int
    to: Address
    data: bytes
    future: asyncio.Future[Reply]
    retries: int
    timeout: float
    sent: int = 0
    started: float = 0.0
    handle: asyncio.TimerHandle | None = None


class DhtNode:
    """A dht-rpc node. Create with :meth:`create` (binds and bootstraps) or construct + :meth:`start`."""

    def __init__(
        self,
        *,
        bootstrap: Sequence[AddressLike] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        ephemeral: bool = True,
        firewalled: bool | None = None,
        public_host: str | None = None,
        socket: UdxSocket | None = None,
        k: int = K,
        concurrency: int = DEFAULT_CONCURRENCY,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        query_retries: int = DEFAULT_QUERY_RETRIES,
        tick_interval: float = TICK_INTERVAL,
        max_ping_delay: float = MAX_PING_DELAY,
        adaptive: bool = False,
        max_window: int = DEFAULT_MAX_WINDOW,
        filter_node: Callable[[Address], bool] | None = None,
    ) -> None:
        self.bootstrap_nodes = [parse_address(b) for b in bootstrap]
        # which addresses we may learn about and talk to (JS's filterNode); None accepts all
        self.filter_node = filter_node
        self._host = host
        self._port = port
        self.ephemeral = ephemeral
        # a persistent node must be reachable, so it cannot be firewalled
        self.firewalled = (ephemeral if firewalled is None else firewalled) and ephemeral
        self._public_host = public_host
        self._socket = socket
        self._owns_socket = socket is None
        # adaptive nodes also get a client socket, as JS has, so they can test reachability
        self.adaptive = adaptive and ephemeral
        self._client: UdxSocket | None = None
        self.k = k
        self.concurrency = concurrency
        self.request_timeout = request_timeout
        self.retries = retries
        self.query_retries = query_retries
        self.tick_interval = tick_interval
        self.max_ping_delay = max_ping_delay
        self.table = RoutingTable(os.urandom(32), k)
        self.on_request: RequestHandler | None = None
        self.on_add_node: Callable[[RoutingNode], None] | None = None
        self.on_remove_node: Callable[[RoutingNode], None] | None = None
        self.bootstrapped = False
        self.closed = False
        self.observed: Address | None = None  # how the last peer addressed us
        self.stats: dict[str, int] = {
            "requests": 0,
            "responses": 0,
            "timeouts": 0,
            "received": 0,
            "dropped": 0,
        }
        self._inflight: dict[int, _Inflight] = {}
        self.congestion = CongestionWindow(max_window)
        self._queued: deque[_Inflight] = deque()
        self._drain_handle: asyncio.TimerHandle | None = None
        self._tid = random.randrange(0x10000)
        self._secrets = [os.urandom(32), os.urandom(32)]
        self._secrets_at = time.monotonic()
        self._tick = 0
        self._tick_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._checks = 0
        self._repinging = 0
        self.nat = NatSampler()
        self._idless_samples: set[Address] = set()

    # --- lifecycle ----------------------------------------------------------------------------

    @classmethod
    async def create(cls, **options: Any) -> DhtNode:
        """Bind, then bootstrap from the given list (if any) before returning."""
        node = cls(**options)
        await node.start()
        await node.bootstrap()
        return node

    @classmethod
    async def bootstrapper(cls, host: str, port: int = 0, **options: Any) -> DhtNode:
        """A persistent, unfirewalled node with no bootstrap list: the first node of a network."""
        if host in ("0.0.0.0", "::") or ":" in host:
            raise EncodeError("a bootstrapper needs a specific IPv4 host", host=host)
        options.setdefault("bootstrap", ())
        node = cls(host=host, port=port, ephemeral=False, firewalled=False, **options)
        await node.start()
        node.bootstrapped = True
        return node

    async def start(self) -> None:
        """Bind the socket (unless one was given) and adopt our id if we are persistent."""
        if self._socket is None:
            self._socket = await UdxSocket.bind(self._host, self._port)
        self._socket.on_message = self._on_datagram
        if self.adaptive:
            # same UDX namespace as the server socket, so a stream can run over either (as in JS)
            self._client = await UdxSocket.bind(self._socket.address[0], 0, udx=self._socket.udx)
            self._client.on_message = self._on_client_datagram
        if not self.ephemeral:
            host = self._public_host or self._socket.address[0]
            if host in ("0.0.0.0", "::") or ":" in host:
                raise EncodeError("a persistent node needs its public IPv4 host", host=host)
            self._set_id(peer_id(host, self._socket.address[1]))
        self._tick_task = asyncio.get_running_loop().create_task(self._ticker())
        self._drain_handle = asyncio.get_running_loop().call_later(DRAIN_INTERVAL, self._drain)

    async def bootstrap(self) -> None:
        """Look up our own id so the nodes near us learn about us and fill our table."""
        await self._find_node(self.table.id, background=True)
        self.bootstrapped = True

    async def update_network_state(self) -> bool:
        """Become reachable and persistent if the network allows it (an adaptive node).

        Firewalled: ask up to 5 known nodes (PING_NAT, from the client socket) to answer on our
        server socket's port. Replies that arrive there from enough of them, agreeing that we
        are at our server port, prove unsolicited packets reach us: we are not firewalled.
        Then, with a consistent public host and port, we take ``id = BLAKE2b(host ‖ port)``,
        send it from now on, and look ourselves up again so nodes near us add us.
        """
        if not self.ephemeral or self.closed:
            return False
        if self.firewalled:
            if self._client is None or not await self._probe_reachable():
                return False
            self.firewalled = False
        host, port = self.nat.host, self.nat.port
        if host is None or port == 0 or port != self.address.port:
            return False
        self.ephemeral = False
        self._set_id(peer_id(host, port))
        await self.bootstrap()
        return True

    async def _probe_reachable(self) -> bool:
        nodes = [Address(n.host, n.port) for n in sorted(self.table, key=lambda n: -n.seen)[:5]]
        for addr in self.bootstrap_nodes:
            if len(nodes) >= 5:
                break
            if addr not in nodes:
                nodes.append(addr)
        if not nodes:
            return False
        server_port = self.address.port
        outcomes = await asyncio.gather(
            *(self.request(PING_NAT, n, value=encode_port(server_port), internal=True) for n in nodes),
            return_exceptions=True,
        )
        sampler = NatSampler()
        count = 0
        for outcome in outcomes:
            if isinstance(outcome, Reply) and outcome.on_server and outcome.error == 0:
                count += 1
                sampler.add(outcome.to.host, outcome.to.port)
        if count < (3 if len(nodes) >= 5 else 1):
            return False
        if sampler.host is None or sampler.host != self.nat.host or sampler.port != server_port:
            return False
        self.nat = sampler
        self._idless_samples.clear()
        return True

    async def close(self) -> None:
        """Fail pending requests, stop background work, close the socket if we opened it."""
        if self.closed:
            return
        self.closed = True
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._drain_handle is not None:
            self._drain_handle.cancel()
            self._drain_handle = None
        self._queued.clear()
        for req in list(self._inflight.values()):
            self._finish(req, RequestDestroyed("dht node closed", tid=req.tid))
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._socket is not None:
            if self._socket.on_message == self._on_datagram:
                self._socket.on_message = None
            if self._owns_socket:
                await self._socket.close()
        if self._client is not None:
            await self._client.close()

    async def __aenter__(self) -> DhtNode:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def socket(self) -> UdxSocket:
        if self._socket is None:
            raise ProtocolError("dht node is not started")
        return self._socket

    @property
    def request_socket(self) -> UdxSocket:
        """The socket our requests leave from (JS ``dht.socket``): the client socket while an
        adaptive node is firewalled, else the server socket. Peers answer and connect there."""
        if self.firewalled and self._client is not None:
            return self._client
        return self.socket

    @property
    def address(self) -> Address:
        """The local address of our socket."""
        host, port = self.socket.address
        return Address(host, port)

    @property
    def host(self) -> str | None:
        """Our public IP as voted by recent replies (None until they agree)."""
        return self.nat.host

    @property
    def port(self) -> int:
        """Our public port as voted by recent replies; 0 if unknown or randomized by a NAT."""
        return self.nat.port

    @property
    def randomized(self) -> bool:
        """Our NAT keeps the IP but changes the port per destination (hard to holepunch)."""
        return self.nat.host is not None and self.nat.port == 0

    @property
    def id(self) -> bytes | None:
        """Our id as others see it, or None while ephemeral (as in JS)."""
        return None if self.ephemeral else self.table.id

    def _set_id(self, id: bytes) -> None:
        if id == self.table.id:
            return
        old = list(self.table)
        self.table = RoutingTable(id, self.k)
        for node in old:
            if node.id != id:
                self.table.add(node)

    def nodes(self) -> list[Address]:
        """Every address in the routing table."""
        return [Address(n.host, n.port) for n in self.table]

    def add_node(self, address: AddressLike) -> None:
        """Add a node we know is persistent at ``address`` (its id is derived from the address)."""
        addr = parse_address(address)
        self._add_node(RoutingNode(peer_id(addr.host, addr.port), addr.host, addr.port))

    # --- requests -----------------------------------------------------------------------------

    def _next_tid(self) -> int:
        for _ in range(0x10000):
            tid = self._tid
            self._tid = (self._tid + 1) & 0xFFFF
            if tid not in self._inflight:
                return tid
        raise ProtocolError("no free transaction id")  # pragma: no cover - bounded by MAX_INFLIGHT

    async def request(
        self,
        command: int,
        address: AddressLike,
        *,
        target: bytes | None = None,
        value: bytes | None = None,
        token: bytes | None = None,
        internal: bool = False,
        retries: int | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Send one request and wait for its response (raises :class:`RequestTimeout`).

        Error responses are returned, not raised: ``reply.error`` is the remote's code, which
        callers such as HyperDHT interpret per command.
        """
        to = parse_address(address)
        if self.closed:
            raise RequestDestroyed("dht node closed")
        if len(self._inflight) >= MAX_INFLIGHT:
            raise ProtocolError("too many requests in flight", limit=MAX_INFLIGHT)
        tid = self._next_tid()
        data = encode_request(
            Request(
                tid=tid,
                to=to,
                command=command,
                internal=internal,
                id=self.id,
                token=token,
                target=target,
                value=value,
            )
        )
        loop = asyncio.get_running_loop()
        req = _Inflight(
            tid=tid,
            to=to,
            data=data,
            future=loop.create_future(),
            retries=self.retries if retries is None else retries,
            timeout=self.request_timeout if timeout is None else timeout,
            started=loop.time(),
        )
        self._inflight[tid] = req
        self.stats["requests"] += 1
        self._send_or_queue(req)
        try:
            return await req.future
        except asyncio.CancelledError:
            # the caller gave up (a finished query, a timeout): stop retrying for it
            if self._inflight.get(tid) is req:
                self._finish(req, RequestDestroyed("request cancelled", tid=tid))
            raise

    async def ping(self, address: AddressLike, **options: Any) -> Reply:
        return await self.request(PING, address, internal=True, **options)

    def _send_or_queue(self, req: _Inflight) -> None:
        if self.congestion.full():
            self._queued.append(req)
        else:
            self._send(req)

    def _drain(self) -> None:
        """Every 750 ms: advance the congestion window and send what waited for room."""
        self._drain_handle = None
        if self.closed:
            return
        self.congestion.drain()
        while self._queued and not self.congestion.full():
            req = self._queued.popleft()
            if self._inflight.get(req.tid) is req:
                self._send(req)
        self._drain_handle = asyncio.get_running_loop().call_later(DRAIN_INTERVAL, self._drain)

    def _send(self, req: _Inflight) -> None:
        req.sent += 1
        self.congestion.send()
        # firewalled adaptive nodes ask from the client socket, keeping the server one unseen
        sock = self._client if self.firewalled and self._client is not None else self.socket
        sock.send(req.data, req.to.as_tuple())
        loop = asyncio.get_running_loop()
        req.handle = loop.call_later(req.timeout, self._on_cycle, req)

    def _on_cycle(self, req: _Inflight) -> None:
        req.handle = None
        if self._inflight.get(req.tid) is not req:
            return
        if req.sent > req.retries:
            self.stats["timeouts"] += 1
            self._finish(req, RequestTimeout("dht request timed out", to=str(req.to), tries=req.sent))
            node = self.table.get(peer_id(req.to.host, req.to.port))
            if node is not None and (node.host, node.port) == req.to.as_tuple():
                self._remove_node(node)
            return
        self._send_or_queue(req)

    def _finish(self, req: _Inflight, outcome: Reply | HyperlobbyError) -> None:
        if self._inflight.get(req.tid) is req:
            del self._inflight[req.tid]
            if req.sent > 0:
                self.congestion.recv()
        if req.handle is not None:
            req.handle.cancel()
            req.handle = None
        if req.future.done():
            return
        if isinstance(outcome, Reply):
            req.future.set_result(outcome)
        else:
            req.future.set_exception(outcome)

    # --- queries ------------------------------------------------------------------------------

    async def find_node(
        self, target: bytes, *, timeout: float = DEFAULT_QUERY_TIMEOUT, max_visits: int = 256
    ) -> list[QueryReply]:
        """Iterative FIND_NODE: the (up to k) closest nodes to ``target`` that answered, nearest first."""
        return await self._find_node(target, timeout=timeout, max_visits=max_visits)

    async def _find_node(
        self,
        target: bytes,
        *,
        background: bool = False,
        timeout: float = DEFAULT_QUERY_TIMEOUT,
        max_visits: int = 256,
    ) -> list[QueryReply]:
        concurrency = min(self.concurrency, max(2, self.concurrency // 8)) if background else self.concurrency
        query = await self.query(
            FIND_NODE,
            target,
            internal=True,
            timeout=timeout,
            max_visits=max_visits,
            concurrency=concurrency,
        )
        return query.closest_replies

    async def query(
        self,
        command: int,
        target: bytes,
        value: bytes | None = None,
        *,
        internal: bool = False,
        timeout: float = DEFAULT_QUERY_TIMEOUT,
        max_visits: int = 256,
        concurrency: int | None = None,
        on_reply: Callable[[QueryReply], None] | None = None,
        nodes: Sequence[AddressLike] = (),
    ) -> Query:
        """Run ``command`` iteratively toward ``target``; returns the finished :class:`Query`.

        Every node visited gets the command with the target and value (HyperDHT's LOOKUP works
        this way); ``on_reply`` sees each successful answer as it arrives. ``nodes`` seeds the
        walk (e.g. the closest nodes of an earlier query, as HyperDHT re-announces). The query
        ends when nobody closer is left, after ``max_visits`` requests, or after ``timeout``
        seconds. Follow with :meth:`commit` to act on the closest nodes with their tokens.
        """
        if len(target) != 32:
            raise EncodeError("query target must be 32 bytes", length=len(target))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        query = Query(
            target,
            own_id=self.table.id,
            k=self.k,
            concurrency=concurrency or self.concurrency,
            max_visits=max_visits,
            deadline=deadline,
            command=command,
            value=value,
            internal=internal,
            accept=self.filter_node,
        )
        for seed in nodes:
            query.add_candidate(parse_address(seed))
        for node in self.table.nearest(target):
            query.add_candidate(Address(node.host, node.port), id=node.id)
        if len(self.table) < self.k:
            for addr in self.bootstrap_nodes:
                query.add_candidate(addr)
        running: dict[asyncio.Task[Reply], Address] = {}
        try:
            for _round in range(max_visits + 1):
                for addr in query.next_visits(loop.time()):
                    task = loop.create_task(
                        self.request(
                            command,
                            addr,
                            target=target,
                            value=value,
                            internal=internal,
                            retries=self.query_retries,
                        )
                    )
                    running[task] = addr
                if not running:
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                done, _ = await asyncio.wait(running, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    break
                for task in done:
                    addr = running.pop(task)
                    exc = task.exception()
                    if exc is None:
                        reply = task.result()
                        query.on_reply(addr, reply.id, reply.response)
                        if on_reply is not None and reply.error == 0:
                            on_reply(QueryReply(addr, reply.id, reply.response))
                    else:
                        hints = query.on_failure(addr, timed_out=isinstance(exc, RequestTimeout))
                        for hint in hints[:MAX_CHECKS]:
                            self._spawn(self._send_down_hint(hint.tell, hint.down))
                if query.done:
                    break
        finally:
            query.finish()
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        return query

    async def commit(
        self,
        query: Query,
        command: int | None = None,
        value: bytes | None = None,
        *,
        timeout: float = DEFAULT_QUERY_TIMEOUT,
    ) -> list[Reply | HyperlobbyError]:
        """Send ``command`` with each closest node's token (what ANNOUNCE and UNANNOUNCE need).

        A node only accepts a token it issued to our IP, so this is the second round trip
        after a query: the lookup collected tokens, the commit spends them. Defaults to the
        query's own command; results are in closest-first order, failures as exceptions.
        """

        async def one(reply: QueryReply) -> Reply | HyperlobbyError:
            if reply.response.token is None:
                return ProtocolError("no token from closest node", node=str(reply.address))
            try:
                return await self.request(
                    query.command if command is None else command,
                    reply.address,
                    target=query.target,
                    value=query.value if value is None else value,
                    token=reply.response.token,
                    internal=query.internal,
                )
            except HyperlobbyError as exc:
                return exc

        return list(await asyncio.wait_for(asyncio.gather(*(one(r) for r in query.closest_replies)), timeout))

    async def _send_down_hint(self, tell: Address, down: Address) -> None:
        with contextlib.suppress(HyperlobbyError):
            await self.request(DOWN_HINT, tell, value=encode_down_hint(down.host, down.port), internal=True)

    def _spawn(self, coro: Any) -> None:
        if self.closed:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- incoming -----------------------------------------------------------------------------

    def _on_client_datagram(self, data: bytes, source: tuple[str, int]) -> None:
        self._on_datagram(data, source, self._client)

    def receive_datagram(self, data: bytes, source: tuple[str, int], via: UdxSocket) -> None:
        """A datagram arrived on another socket of ours (``via``, e.g. a holepunch socket).

        It is handled as if it came in on the node's own socket, except that replies and
        relays leave through ``via``, so the remote sees the address it wrote to.
        """
        self._on_datagram(data, source, via)

    @property
    def pending_requests(self) -> int:
        """Requests sent (or queued) and not yet answered, timed out or cancelled."""
        return len(self._inflight)

    def _on_datagram(self, data: bytes, source: tuple[str, int], via: UdxSocket | None = None) -> None:
        """Everything the UDX router did not claim; anything malformed is dropped silently."""
        if self.closed or len(data) < 2:
            return
        host, port = source[0], source[1]
        if not 0 < port < 0x10000 or ":" in host:
            return
        try:
            msg = decode_message(data)
        except (DecodeError, ValueError):
            self.stats["dropped"] += 1
            return
        self.stats["received"] += 1
        sender = Address(host, port)
        if isinstance(msg, Request):
            self._on_request(msg, sender, via)
        else:
            self._on_response(msg, sender, via is None)

    def _verified_id(self, claimed: bytes | None, sender: Address) -> bytes | None:
        if claimed is None:
            return None
        expected = peer_id(sender.host, sender.port)
        return expected if claimed == expected else None

    def _on_response(self, res: Response, sender: Address, on_server: bool = True) -> None:
        req = self._inflight.get(res.tid)
        # JS matches by tid alone. We also want the host we asked, but not the port: HyperDHT
        # answers some handshakes from another socket of the same node (its socket pool).
        if req is None or req.to.host != sender.host:
            return
        from_id = self._verified_id(res.id, sender)
        self.stats["responses"] += 1
        rtt = asyncio.get_running_loop().time() - req.started
        self._add_from_network(sender, from_id, res.to)
        self._finish(req, Reply(sender, from_id, res, rtt, on_server))

    def _on_request(self, req: Request, sender: Address, via: UdxSocket | None = None) -> None:
        if req.token is not None and req.token not in (
            self._token(sender.host, 1),
            self._token(sender.host, 0),
        ):
            self._send_reply(req, sender, ERROR_INVALID_TOKEN, None, True, True, via)
            return
        from_id = self._verified_id(req.id, sender)
        if from_id is not None:
            self._add_from_network(sender, from_id, req.to)
        if req.internal:
            self._on_internal(req, sender, via)
            return
        handler = self.on_request
        handled: bool | None = False
        if handler is not None:
            try:
                handled = handler(IncomingRequest(sender, from_id, req, self, via))
            except Exception:  # a faulty handler must not take the node down
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "dht on_request handler failed", "node": self}
                )
                handled = None
        if handled is False:
            self._send_reply(req, sender, ERROR_UNKNOWN_COMMAND, None, False, req.target is not None, via)

    def _on_internal(self, req: Request, sender: Address, via: UdxSocket | None = None) -> None:
        if req.command == PING:
            self._send_reply(req, sender, 0, None, False, False, via)
        elif req.command == PING_NAT:
            # the requester asks for the reply on another of its ports, to learn if it is open
            if req.value is None or len(req.value) < 2:
                return
            port = req.value[0] | (req.value[1] << 8)
            if port == 0:
                return
            self._send_reply(req, Address(sender.host, port), 0, None, False, False, via)
        elif req.command == FIND_NODE:
            if req.target is None:
                return
            self._send_reply(req, sender, 0, None, False, True, via)
        elif req.command == DOWN_HINT:
            if req.value is None or len(req.value) < 6:
                return
            if self._checks < MAX_CHECKS:
                node = self.table.get(hashlib.blake2b(req.value[:6], digest_size=32).digest())
                if node is not None and (node.pinged < self._tick or node.down_hints == 0):
                    node.down_hints += 1
                    self._check(node)
            self._send_reply(req, sender, 0, None, False, False, via)
        elif req.command == DELAYED_PING:
            if req.value is None or len(req.value) < 4:
                return
            delay = int.from_bytes(req.value[:4], "little") / 1000
            if delay > self.max_ping_delay:
                return
            timer: asyncio.TimerHandle | None = None

            def fire() -> None:
                if timer is not None:
                    self._timers.discard(timer)
                if not self.closed:
                    self._send_reply(req, sender, 0, None, False, False, via)

            timer = asyncio.get_running_loop().call_later(delay, fire)
            self._timers.add(timer)
        else:
            self._send_reply(req, sender, ERROR_UNKNOWN_COMMAND, None, False, req.target is not None, via)

    def _send_reply(
        self,
        req: Request,
        to: Address,
        error: int,
        value: bytes | None,
        token: bool,
        closer_nodes: bool,
        via: UdxSocket | None = None,
    ) -> None:
        if self.closed or self._socket is None:
            return
        closer: tuple[Address, ...] = ()
        if req.target is not None and closer_nodes:
            closer = tuple(Address(n.host, n.port) for n in self.table.nearest(req.target))
        data = encode_response(
            Response(
                tid=req.tid,
                to=to,
                id=self.id,
                token=self._token(to.host, 1) if token else None,
                closer_nodes=closer,
                error=error,
                value=value,
            )
        )
        (via or self._socket).send(data, to.as_tuple())

    def _relay(self, req: Request, value: bytes | None, to: Address, via: UdxSocket | None = None) -> None:
        if self.closed or self._socket is None:
            return
        data = encode_request(
            Request(
                tid=req.tid,
                to=to,
                command=req.command,
                internal=req.internal,
                id=self.id,
                target=req.target,
                value=value,
            )
        )
        (via or self._socket).send(data, to.as_tuple())

    def _token(self, host: str, index: int) -> bytes:
        """Round-trip token for ``host``: proves a requester receives at that IP."""
        now = time.monotonic()
        rotations = int((now - self._secrets_at) / SECRET_ROTATION)
        if rotations > 0:
            self._secrets_at += rotations * SECRET_ROTATION
            for _ in range(min(rotations, 2)):
                old = self._secrets[0]
                self._secrets[0] = self._secrets[1]
                self._secrets[1] = hashlib.blake2b(old, digest_size=32).digest()
        return make_token(self._secrets[index], host)

    # --- table maintenance --------------------------------------------------------------------

    def _add_from_network(self, sender: Address, from_id: bytes | None, to: Address) -> None:
        if self.filter_node is not None and not self.filter_node(sender):
            return
        self.observed = to
        if from_id is None:
            # id-less peers (bootstrap nodes still starting, ephemeral ones) may vote on our
            # address too, but only a few distinct ones, so they cannot outvote the table
            if sender not in self._idless_samples and len(self._idless_samples) < max(
                1, len(self.bootstrap_nodes)
            ):
                self._idless_samples.add(sender)
                self.nat.add(to.host, to.port)
            return
        old = self.table.get(from_id)
        if old is not None:
            if old.sampled is None or self._tick - old.sampled >= OLD_NODE_TICKS:
                old.sampled = self._tick
                self.nat.add(to.host, to.port)
            old.seen = old.pinged = self._tick
            old.to = to.as_tuple()
            return
        node = RoutingNode(from_id, sender.host, sender.port, to=to.as_tuple())
        if self._add_node(node):
            node.sampled = self._tick
            self.nat.add(to.host, to.port)

    def _add_node(self, node: RoutingNode) -> bool:
        if node.id == self.table.id or self.table.has(node.id):
            return False
        node.added = node.seen = node.pinged = self._tick
        if self.table.add(node):
            if self.on_add_node is not None:
                self.on_add_node(node)
            return True
        self._on_full_row(node)
        return False

    def _on_full_row(self, new: RoutingNode) -> None:
        """Ping the stalest node of a full row; if it is gone, the newcomer takes its place."""
        if not self.bootstrapped or self._repinging >= 3:
            return
        row = self.table.row_of(new.id)
        candidates = [n for n in row if n.pinged != self._tick]
        if not candidates:
            return
        oldest = min(candidates, key=lambda n: (n.pinged, n.added))
        # a long-lived node we heard from recently keeps its place without a ping
        if self._tick - oldest.pinged < RECENT_NODE_TICKS and self._tick - oldest.added > OLD_NODE_TICKS:
            return
        oldest.pinged = self._tick
        self._repinging += 1
        self._spawn(self._reping_and_swap(new, oldest))

    async def _reping_and_swap(self, new: RoutingNode, old: RoutingNode) -> None:
        last_seen = old.seen
        try:
            await self.ping(Address(old.host, old.port))
            alive = old.seen > last_seen or self.table.get(old.id) is old
        except HyperlobbyError:
            alive = False
        finally:
            self._repinging -= 1
        if not alive:
            self._remove_node(old)
            self._add_node(new)

    def _remove_node(self, node: RoutingNode) -> None:
        if self.table.get(node.id) is node and self.table.remove(node.id) and self.on_remove_node is not None:
            self.on_remove_node(node)

    def _check(self, node: RoutingNode) -> None:
        node.pinged = self._tick
        self._checks += 1

        async def run() -> None:
            try:
                await self.ping(Address(node.host, node.port))
            except HyperlobbyError:
                self._remove_node(node)
            finally:
                self._checks -= 1

        self._spawn(run())

    async def _ticker(self) -> None:
        """Background upkeep: re-ping the stalest nodes and refresh a thin table."""
        while not self.closed:
            await asyncio.sleep(self.tick_interval)
            self._tick += 1
            if not self.bootstrapped:
                continue
            if self._tick % 8 == 0:
                stale = sorted(self.table, key=lambda n: n.seen)[:3]
                for node in stale:
                    if node.pinged != self._tick and self._checks < MAX_CHECKS:
                        self._check(node)
            if len(self.table) < self.k and self._tick % 12 == 0:
                pick = self.table.random()
                self._spawn(self._find_node(pick.id if pick else self.table.id, background=True))


__all__ = [
    "DhtNode",
    "IncomingRequest",
    "Reply",
    "RequestDestroyed",
    "RequestHandler",
    "RequestTimeout",
    "parse_address",
]
