"""HyperDHT: peer discovery, records and relaying on top of dht-rpc (wire-compatible with npm hyperdht).

Theory of operation
-------------------
A :class:`HyperDht` is a :class:`~hyperlobby.swarm.dht_rpc.DhtNode` plus HyperDHT's commands:

* as a *server of others*, once its node is persistent, it answers ANNOUNCE / UNANNOUNCE /
  LOOKUP / FIND_PEER / MUTABLE_* / IMMUTABLE_* from the sans-IO
  :class:`~hyperlobby.swarm.hyperdht.persistent.Persistent` store; an ephemeral node answers
  them with UNKNOWN_COMMAND, as JS does (it is not in anyone's table, so it stores nothing).
  PEER_HANDSHAKE / PEER_HOLEPUNCH go to the :class:`~hyperlobby.swarm.hyperdht.router.Router`
  whatever the node's state, because a node must route for its own servers.
* as a *client*, it runs iterative queries toward a target and acts on the closest nodes
  with the tokens they handed out: :meth:`lookup` streams what nodes store under a topic,
  :meth:`announce` signs our record for each of the closest nodes (the signature covers that
  node's id and token, see ``persistent``) and stores it, :meth:`unannounce` removes it,
  :meth:`find_peer` finds the nodes a server announced itself through, and the mutable /
  immutable put/get pairs store small values. Everything that comes back is verified:
  immutable values must hash to the target, mutable ones must carry their owner's signature.

Queries are exposed as :class:`QueryStream` objects: async-iterable (each useful reply, as
it arrives) and awaitable through :meth:`QueryStream.finished` (the finished
:class:`~hyperlobby.swarm.dht_rpc.Query`, whose ``closest_replies`` carry the tokens).
Leaving an ``async for`` over a stream early stops its query (its requests are cancelled), so
a consumer that found what it wanted does not leave the walk running; ``async with`` a stream
stops it deterministically when the block ends.

Bootstrap addresses are never implied. :data:`PUBLIC_BOOTSTRAP` is the public HyperDHT list
for an application to pass explicitly; this library never uses it on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.crypto.keys import KeyPair, key_pair
from hyperlobby.encoding import compact
from hyperlobby.errors import EncodeError, HyperlobbyError, ProtocolError
from hyperlobby.swarm.dht_rpc import Address, DhtNode, IncomingRequest, Query, QueryReply, Reply
from hyperlobby.swarm.dht_rpc.node import DEFAULT_QUERY_TIMEOUT, AddressLike
from hyperlobby.swarm.hyperdht import constants as C
from hyperlobby.swarm.hyperdht import messages as m
from hyperlobby.swarm.hyperdht.holepuncher import RANDOM_PUNCH_INTERVAL, RandomPunches
from hyperlobby.swarm.hyperdht.persistent import (
    MAX_LOOKUP_PEERS,
    Persistent,
    sign_announce,
    sign_mutable,
    sign_unannounce,
    verify_mutable,
)
from hyperlobby.swarm.hyperdht.router import Router

if TYPE_CHECKING:
    from hyperlobby.swarm.hyperdht.connection import DhtConnection
    from hyperlobby.swarm.hyperdht.server import Server

T = TypeVar("T")

# The public HyperDHT bootstrap nodes ("ip@name:port", from hyperdht's lib/constants.js), for an
# application to offer real users as their default. Never used implicitly, never in tests.
PUBLIC_BOOTSTRAP: Final[tuple[str, ...]] = C.BOOTSTRAP_NODES

PeerRecord = m.Peer


class QueryFailed(ProtocolError):
    """A put/announce found no node to commit to, or every commit failed."""


@dataclass(frozen=True, slots=True)
class LookupReply:
    """One node's answer to LOOKUP: the peers it stores under the topic (``bump``: newest refresh, ms)."""

    peers: tuple[PeerRecord, ...]
    bump: int
    from_address: Address
    from_id: bytes | None
    token: bytes | None
    to: Address


@dataclass(frozen=True, slots=True)
class FindPeerReply:
    """One node's answer to FIND_PEER: the server's record, and the node that can relay to it."""

    peer: PeerRecord
    from_address: Address
    from_id: bytes | None
    token: bytes | None
    to: Address


@dataclass(frozen=True, slots=True)
class MutableRecord:
    """A verified mutable value: ``signature`` is the owner's over ``(seq, value)``."""

    seq: int
    value: bytes
    signature: bytes
    from_address: Address


@dataclass(frozen=True, slots=True)
class ImmutableRecord:
    """A verified immutable value (it hashes to the target it was asked under)."""

    value: bytes
    from_address: Address


@dataclass(frozen=True, slots=True)
class PutResult:
    """What a put or announce committed to: the target and the closest nodes that got it."""

    target: bytes
    closest_nodes: tuple[Address, ...]
    committed: int
    seq: int = 0
    signature: bytes | None = None


class QueryStream(Generic[T]):
    """A running query: iterate for its mapped replies, or await :meth:`finished` for the Query.

    A stream made with a ``commit`` (an announce) runs it on the closest replies once the walk
    is over and before the iteration ends, as a JS query with a commit does; its outcome is
    :attr:`result`, and a failed commit is raised at the end of the iteration / by
    :meth:`finished`.

    The query starts on first use and always ends by itself (bounded by ``timeout``). Ways to
    stop it earlier, each cancelling its outstanding requests:

    * leave an ``async for`` loop over the stream (``break``, ``return``, an exception): the
      loop's iterator stops the query when it is closed, which asyncio does as soon as the
      iterator is dropped (at once on CPython, as the loop held the only reference);
    * use the stream as an async context manager: ``async with dht.lookup(t) as stream:``
      stops it, and waits for it to stop, when the block ends, whatever happened inside;
    * call :meth:`aclose` (waits) or :meth:`stop` (does not).

    A loop that runs to the end leaves nothing to stop. :meth:`__anext__` (``anext(stream)``)
    pulls items without a loop and stops nothing. Once stopped, iterating ends at once and
    :meth:`finished` raises :class:`QueryFailed`.
    """

    _END: Final = object()

    def __init__(
        self,
        dht: HyperDht,
        command: int,
        target: bytes,
        value: bytes | None,
        mapper: Callable[[QueryReply], T | None],
        *,
        nodes: Sequence[AddressLike] = (),
        timeout: float = DEFAULT_QUERY_TIMEOUT,
        commit: Callable[[Query], Awaitable[PutResult]] | None = None,
    ) -> None:
        self._dht = dht
        self._commit = commit
        # what the commit did (an announce stream's PutResult), once the stream has ended
        self.result: PutResult | None = None
        self.command = command
        self.target = target
        self._value = value
        self._mapper = mapper
        self._nodes = nodes
        self._timeout = timeout
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[Query] | None = None
        self._ended = False
        self._stopped = False

    def _start(self) -> asyncio.Task[Query]:
        if self._task is None:
            self._task = self._dht._track(self._run())
        return self._task

    def _on_reply(self, reply: QueryReply) -> None:
        try:
            item = self._mapper(reply)
        except Exception:  # a reply that does not decode or verify is skipped, whatever it holds
            item = None
        if item is not None:
            self._queue.put_nowait(item)

    async def _run(self) -> Query:
        try:
            query = await self._dht.node.query(
                self.command,
                self.target,
                self._value,
                on_reply=self._on_reply,
                nodes=self._nodes,
                timeout=self._timeout,
            )
            if self._commit is not None:
                self.result = await self._commit(query)
            return query
        finally:
            self._queue.put_nowait(self._END)

    async def finished(self) -> Query:
        """Run the query (and its commit) to the end and return it; un-iterated items stay queued."""
        task = self._start()
        if self._stopped and (task.cancelled() or not task.done()):
            raise QueryFailed("the query was stopped early", target=self.target.hex())
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and self._stopped and (current is None or not current.cancelling()):
                raise QueryFailed("the query was stopped early", target=self.target.hex()) from None
            raise

    def __aiter__(self) -> AsyncIterator[T]:
        """A loop's iterator: when the loop is left before the end, the query is stopped."""
        self._start()
        return self._loop_items()

    async def _loop_items(self) -> AsyncIterator[T]:
        try:
            while True:
                try:
                    item = await self.__anext__()
                except StopAsyncIteration:
                    return
                yield item
        finally:
            # Reached by a loop left early (asyncio closes a dropped async generator) as well
            # as by the end; stopping an ended query does nothing.
            self.stop()

    async def __aenter__(self) -> QueryStream[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def __anext__(self) -> T:
        if self._ended:
            raise StopAsyncIteration
        task = self._start()
        item = await self._queue.get()
        if item is self._END:
            self._ended = True
            failure = None if task.cancelled() else task.exception()
            if failure is not None:
                raise failure
            raise StopAsyncIteration
        result: T = item
        return result

    def stop(self) -> None:
        """Stop the query now without waiting: its outstanding requests are cancelled (their
        tasks finish on the next loop iterations) and iterating ends."""
        task = self._task
        if task is not None and not task.done():
            self._stopped = True
            self._ended = True
            task.cancel()

    async def aclose(self) -> None:
        """Stop the query and wait until its requests are cancelled."""
        self.stop()
        self._ended = True
        task = self._task
        if task is None or task.done():
            return
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled ourselves, not just the query
        except HyperlobbyError:
            pass


def _map_lookup(reply: QueryReply) -> LookupReply | None:
    res = reply.response
    if not res.value:
        return None
    decoded = m.decode(m.lookup_raw_reply, res.value)
    return LookupReply(decoded.peers, decoded.bump, reply.address, reply.id, res.token, res.to)


def _map_find_peer(reply: QueryReply) -> FindPeerReply | None:
    res = reply.response
    if not res.value:
        return None
    return FindPeerReply(m.decode(m.peer, res.value), reply.address, reply.id, res.token, res.to)


# HyperDht's own constructor options (the rest of what bootstrapper() is given is dht-rpc's)
_HYPERDHT_OPTIONS = (
    "max_size",
    "max_age",
    "record_max_age",
    "keypair",
    "random_punch_interval",
    "defer_random_punch",
)


class HyperDht:
    """A HyperDHT node (see the module docstring). Make one with :meth:`create` or :meth:`bootstrapper`."""

    def __init__(
        self,
        node: DhtNode,
        *,
        max_size: int = 65536,
        max_age: float = 20 * 60.0,
        record_max_age: float = 48 * 60 * 60.0,
        clock: Callable[[], float] = time.time,
        keypair: KeyPair | None = None,
        random_punch_interval: float = RANDOM_PUNCH_INTERVAL,
        defer_random_punch: bool = False,
    ) -> None:
        self.node = node
        self._clock = clock
        self.router = Router(node, max_size=max_size, max_age=max_age, clock=clock)
        self.persistent = Persistent(
            self.router, max_size=max_size, max_age=max_age, record_max_age=record_max_age, now=clock()
        )
        self.closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        # what servers and connections register to be closed first by close()
        self.on_close: list[Callable[[], Awaitable[None]]] = []
        # the identity connect() uses when none is given (JS ``defaultKeyPair``)
        self.default_keypair: KeyPair = keypair if keypair is not None else key_pair()
        # holepunches that guess ports or open birthday sockets, rationed per node as in JS
        self.random_punches = RandomPunches(
            interval=random_punch_interval, now=time.monotonic(), defer=defer_random_punch
        )
        node.on_request = self._on_request

    # --- lifecycle ----------------------------------------------------------------------------

    @classmethod
    async def create(
        cls,
        *,
        bootstrap: Sequence[AddressLike],
        host: str = "127.0.0.1",
        port: int = 0,
        ephemeral: bool | None = None,
        max_size: int = 65536,
        max_age: float = 20 * 60.0,
        record_max_age: float = 48 * 60 * 60.0,
        keypair: KeyPair | None = None,
        random_punch_interval: float = RANDOM_PUNCH_INTERVAL,
        defer_random_punch: bool = False,
        **dht_rpc_options: Any,
    ) -> HyperDht:
        """Bind, bootstrap from ``bootstrap`` (required, never implied) and return the node.

        ``ephemeral=None`` starts ephemeral and adaptive as JS does (it may become persistent
        through ``node.update_network_state()``); ``False`` is for nodes known reachable, as on
        a loopback test network. ``random_punch_interval`` (seconds) and
        ``defer_random_punch`` are JS's options of those names: how long after one
        port-guessing holepunch the next may start, and whether a fresh node waits too.
        """
        if ephemeral is None:
            dht_rpc_options.setdefault("adaptive", True)
            ephemeral = True
        node = DhtNode(bootstrap=bootstrap, host=host, port=port, ephemeral=ephemeral, **dht_rpc_options)
        dht = cls(
            node,
            max_size=max_size,
            max_age=max_age,
            record_max_age=record_max_age,
            keypair=keypair,
            random_punch_interval=random_punch_interval,
            defer_random_punch=defer_random_punch,
        )
        await node.start()
        try:
            await node.bootstrap()
        except BaseException:
            await dht.close()
            raise
        return dht

    @classmethod
    async def bootstrapper(cls, host: str = "127.0.0.1", port: int = 0, **options: Any) -> HyperDht:
        """The first, persistent node of a network (others list it in ``bootstrap=``)."""
        keep = {k: options.pop(k) for k in _HYPERDHT_OPTIONS if k in options}
        node = await DhtNode.bootstrapper(host, port, **options)
        return cls(node, **keep)

    async def close(self) -> None:
        """Close servers/connections registered in :attr:`on_close`, the router, then the node."""
        if self.closed:
            return
        self.closed = True
        for hook in list(self.on_close):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(hook(), 5.0)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.router.close()
        self.persistent.clear()
        await self.node.close()

    async def __aenter__(self) -> HyperDht:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _track(self, coro: Awaitable[T]) -> asyncio.Task[T]:
        task: asyncio.Task[T] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def address(self) -> Address:
        return self.node.address

    @property
    def id(self) -> bytes | None:
        return self.node.id

    @property
    def ephemeral(self) -> bool:
        return self.node.ephemeral

    def remote_address(self) -> Address | None:
        """Our address as the network sees it, if we are reachable there (JS ``remoteAddress()``)."""
        if self.node.firewalled:
            return None
        host = self.node.host
        port = self.node.port
        if host is None or port == 0:
            return None
        return Address(host, port)

    # --- incoming -----------------------------------------------------------------------------

    def _on_request(self, req: IncomingRequest) -> bool:
        if self.router.handle(req):
            return True
        if self.node.id is None or req.command not in _STORAGE_COMMANDS:
            return False
        answer = self.persistent.handle(
            req.command,
            target=req.target,
            token=req.token,
            value=req.value,
            node_id=self.node.id,
            sender=req.address,
            now=self._clock(),
        )
        if answer is not None:
            if answer.error:
                req.error(answer.error, token=answer.token, closer_nodes=answer.closer_nodes)
            else:
                req.reply(answer.value, token=answer.token, closer_nodes=answer.closer_nodes)
        return True

    # --- servers and connections (implemented in ``server`` / ``connect``) -------------------

    def create_server(self, *, firewall: Any = None, on_connection: Any = None, **options: Any) -> Server:
        """A :class:`~hyperlobby.swarm.hyperdht.server.Server` on this node; ``listen()`` starts it."""
        from hyperlobby.swarm.hyperdht.server import create_server

        return create_server(self, firewall=firewall, on_connection=on_connection, **options)

    async def connect(
        self,
        remote_public_key: bytes,
        *,
        keypair: KeyPair | None = None,
        relay_addresses: Sequence[Address | tuple[str, int]] | None = None,
        **options: Any,
    ) -> DhtConnection:
        """Connect to the server listening on ``remote_public_key`` (see ``connect``)."""
        from hyperlobby.swarm.hyperdht.connect import connect

        return await connect(
            self, remote_public_key, keypair=keypair, relay_addresses=relay_addresses, **options
        )

    # --- peers --------------------------------------------------------------------------------

    def lookup(
        self, topic: bytes, *, nodes: Sequence[AddressLike] = (), timeout: float = DEFAULT_QUERY_TIMEOUT
    ) -> QueryStream[LookupReply]:
        """Ask the nodes closest to ``topic`` who announced it; iterate for each non-empty reply."""
        _check_target(topic)
        return QueryStream(self, C.LOOKUP, topic, None, _map_lookup, nodes=nodes, timeout=timeout)

    def find_peer(
        self,
        public_key: bytes,
        *,
        hash: bool = True,
        nodes: Sequence[AddressLike] = (),
        timeout: float = DEFAULT_QUERY_TIMEOUT,
    ) -> QueryStream[FindPeerReply]:
        """Find the nodes a server announced itself through (target = BLAKE2b(public key)).

        Each reply's ``from_address`` is a node that can relay a handshake to the server.
        ``hash=False`` takes ``public_key`` as the target itself.
        """
        target = blake2b256(public_key) if hash else public_key
        _check_target(target)
        return QueryStream(self, C.FIND_PEER, target, None, _map_find_peer, nodes=nodes, timeout=timeout)

    async def find_peer_first(self, public_key: bytes, **options: Any) -> FindPeerReply | None:
        """The first FIND_PEER answer for ``public_key``, or None when nobody routes to it."""
        return await _first(self.find_peer(public_key, **options))

    async def announce(
        self,
        topic: bytes,
        keypair: KeyPair,
        relay_addresses: Sequence[Address] = (),
        *,
        bump: int = 0,
        nodes: Sequence[AddressLike] = (),
        timeout: float = DEFAULT_QUERY_TIMEOUT,
    ) -> PutResult:
        """Store our signed peer record under ``topic`` at the closest nodes.

        Raises :class:`QueryFailed` if no node took it.
        """
        stream = self.announce_stream(
            topic, keypair, relay_addresses, bump=bump, nodes=nodes, timeout=timeout
        )
        await stream.finished()
        assert stream.result is not None
        return stream.result

    def announce_stream(
        self,
        topic: bytes,
        keypair: KeyPair,
        relay_addresses: Sequence[Address] = (),
        *,
        bump: int = 0,
        nodes: Sequence[AddressLike] = (),
        timeout: float = DEFAULT_QUERY_TIMEOUT,
    ) -> QueryStream[LookupReply]:
        """:meth:`announce` as one stream (JS ``dht.announce``): the lookup replies met on the way
        (other peers of the topic), then the announce at the closest nodes before it ends.

        A server that is also a client (hyperswarm) learns its peers from the same walk.
        """
        _check_target(topic)

        async def commit_one(reply: QueryReply) -> Reply:
            token = reply.response.token
            if token is None or reply.id is None:
                raise QueryFailed("closest node gave no token", node=str(reply.address))
            return await self.request_announce(
                topic, keypair, token, reply.address, reply.id, relay_addresses, bump=bump
            )

        async def commit(query: Query) -> PutResult:
            return await self._commit_all(topic, query, commit_one)

        return QueryStream(
            self, C.LOOKUP, topic, None, _map_lookup, nodes=nodes, timeout=timeout, commit=commit
        )

    async def request_announce(
        self,
        topic: bytes,
        keypair: KeyPair,
        token: bytes,
        to: Address,
        node_id: bytes,
        relay_addresses: Sequence[Address] = (),
        *,
        bump: int = 0,
    ) -> Reply:
        """One signed ANNOUNCE to node ``to`` (id ``node_id``) with the token it gave us."""
        ann = m.Announce(peer=m.Peer(keypair.public_key, tuple(relay_addresses)), bump=bump)
        signature = sign_announce(topic, token, node_id, ann, keypair)
        value = m.encode(m.announce, m.Announce(ann.peer, None, signature, bump))
        return await self.node.request(C.ANNOUNCE, to, target=topic, value=value, token=token)

    async def request_unannounce(
        self, topic: bytes, keypair: KeyPair, token: bytes, to: Address, node_id: bytes
    ) -> Reply:
        """One signed UNANNOUNCE to node ``to`` (id ``node_id``) with the token it gave us."""
        ann = m.Announce(peer=m.Peer(keypair.public_key, ()))
        signature = sign_unannounce(topic, token, node_id, ann, keypair)
        value = m.encode(m.announce, m.Announce(ann.peer, None, signature))
        return await self.node.request(C.UNANNOUNCE, to, target=topic, value=value, token=token)

    async def unannounce(
        self,
        topic: bytes,
        keypair: KeyPair,
        *,
        nodes: Sequence[AddressLike] = (),
        timeout: float = DEFAULT_QUERY_TIMEOUT,
    ) -> int:
        """Remove our record under ``topic`` from every node that returns it; returns how many.

        Our own store is cleared too (the record may be held here as well).
        """
        stream = self.lookup_and_unannounce(topic, keypair, nodes=nodes, timeout=timeout)
        await stream.finished()
        return stream.result.committed if stream.result is not None else 0

    def lookup_and_unannounce(
        self,
        topic: bytes,
        keypair: KeyPair,
        *,
        nodes: Sequence[AddressLike] = (),
        timeout: float = DEFAULT_QUERY_TIMEOUT,
    ) -> QueryStream[LookupReply]:
        """A lookup that also unannounces us from every node whose reply lists us (JS
        ``lookupAndUnannounce``): a client that stopped serving a topic drops its record while
        it keeps finding the topic's peers. Its :attr:`QueryStream.result` counts the removals.
        """
        _check_target(topic)
        if self.node.id is not None:
            self.persistent.unannounce(topic, keypair.public_key)
        pending: list[asyncio.Task[Reply]] = []

        def map_and_unannounce(raw: QueryReply) -> LookupReply | None:
            reply = _map_lookup(raw)
            if reply is None or reply.token is None or reply.from_id is None:
                return reply
            listed = len(reply.peers) >= MAX_LOOKUP_PEERS or any(
                p.public_key == keypair.public_key for p in reply.peers
            )
            if listed:
                pending.append(
                    self._track(
                        self.request_unannounce(
                            topic, keypair, reply.token, reply.from_address, reply.from_id
                        )
                    )
                )
            return reply

        async def commit(query: Query) -> PutResult:
            results = await asyncio.gather(*pending, return_exceptions=True)
            done = sum(1 for r in results if isinstance(r, Reply) and r.error == 0)
            return PutResult(topic, tuple(query.closest_nodes), done)

        return QueryStream(
            self, C.LOOKUP, topic, None, map_and_unannounce, nodes=nodes, timeout=timeout, commit=commit
        )

    # --- records ------------------------------------------------------------------------------

    async def immutable_put(
        self, value: bytes, *, nodes: Sequence[AddressLike] = (), timeout: float = DEFAULT_QUERY_TIMEOUT
    ) -> PutResult:
        """Store ``value`` under its BLAKE2b-256 hash at the closest nodes (``PutResult.target``)."""
        if not value:
            raise EncodeError("an immutable value cannot be empty")
        target = m.immutable_target(value)
        query = await QueryStream(
            self, C.IMMUTABLE_GET, target, None, _map_nothing, nodes=nodes, timeout=timeout
        ).finished()

        async def commit(reply: QueryReply) -> Reply:
            token = reply.response.token
            if token is None:
                raise QueryFailed("closest node gave no token", node=str(reply.address))
            return await self.node.request(
                C.IMMUTABLE_PUT, reply.address, target=target, value=value, token=token
            )

        return await self._commit_all(target, query, commit)

    def immutable_get_all(
        self, target: bytes, *, nodes: Sequence[AddressLike] = (), timeout: float = DEFAULT_QUERY_TIMEOUT
    ) -> QueryStream[ImmutableRecord]:
        """Every reply to IMMUTABLE_GET whose value really hashes to ``target``."""
        _check_target(target)

        def verified(reply: QueryReply) -> ImmutableRecord | None:
            value = reply.response.value
            if not value or blake2b256(value) != target:
                return None
            return ImmutableRecord(bytes(value), reply.address)

        return QueryStream(self, C.IMMUTABLE_GET, target, None, verified, nodes=nodes, timeout=timeout)

    async def immutable_get(self, target: bytes, **options: Any) -> ImmutableRecord | None:
        """The value stored under ``target`` (verified against the hash), or None."""
        return await _first(self.immutable_get_all(target, **options))

    async def mutable_put(
        self,
        keypair: KeyPair,
        value: bytes,
        *,
        seq: int = 0,
        nodes: Sequence[AddressLike] = (),
        timeout: float = DEFAULT_QUERY_TIMEOUT,
    ) -> PutResult:
        """Sign ``(seq, value)`` and store it under BLAKE2b(public key) at the closest nodes.

        Nodes holding a higher ``seq`` refuse it (SEQ_TOO_LOW), as do nodes holding another
        value at the same ``seq`` (SEQ_REUSED); :class:`QueryFailed` if no node stored it.
        """
        if not value:
            raise EncodeError("a mutable value cannot be empty")
        target = m.mutable_target(keypair.public_key)
        signature = sign_mutable(seq, value, keypair)
        put = m.encode(m.mutable_put_request, m.MutablePutRequest(keypair.public_key, seq, value, signature))
        query = await QueryStream(
            self,
            C.MUTABLE_GET,
            target,
            compact.encode(compact.uint, 0),
            _map_nothing,
            nodes=nodes,
            timeout=timeout,
        ).finished()

        async def commit(reply: QueryReply) -> Reply:
            token = reply.response.token
            if token is None:
                raise QueryFailed("closest node gave no token", node=str(reply.address))
            return await self.node.request(
                C.MUTABLE_PUT, reply.address, target=target, value=put, token=token
            )

        result = await self._commit_all(target, query, commit)
        return PutResult(target, result.closest_nodes, result.committed, seq, signature)

    def mutable_get_all(
        self,
        public_key: bytes,
        *,
        seq: int = 0,
        nodes: Sequence[AddressLike] = (),
        timeout: float = DEFAULT_QUERY_TIMEOUT,
    ) -> QueryStream[MutableRecord]:
        """Every verified mutable record of ``public_key`` with at least ``seq``, as nodes answer."""
        target = m.mutable_target(public_key)

        def verified(reply: QueryReply) -> MutableRecord | None:
            value = reply.response.value
            if not value:
                return None
            got = m.decode(m.mutable_get_response, value)
            if got.seq < seq or not verify_mutable(got.signature, got.seq, got.value, public_key):
                return None
            return MutableRecord(got.seq, got.value, got.signature, reply.address)

        return QueryStream(
            self,
            C.MUTABLE_GET,
            target,
            compact.encode(compact.uint, seq),
            verified,
            nodes=nodes,
            timeout=timeout,
        )

    async def mutable_get(
        self, public_key: bytes, *, seq: int = 0, latest: bool = True, **options: Any
    ) -> MutableRecord | None:
        """The newest verified record of ``public_key`` (or the first one, ``latest=False``)."""
        stream = self.mutable_get_all(public_key, seq=seq, **options)
        if not latest:
            return await _first(stream)
        best: MutableRecord | None = None
        async for record in stream:
            if best is None or record.seq > best.seq:
                best = record
        return best

    # --- helpers ------------------------------------------------------------------------------

    async def _commit_all(
        self, target: bytes, query: Query, commit: Callable[[QueryReply], Awaitable[Reply]]
    ) -> PutResult:
        replies = list(query.closest_replies)
        if not replies:
            raise QueryFailed("too few nodes responded", target=target.hex())
        results = await asyncio.gather(*(commit(r) for r in replies), return_exceptions=True)
        ok = [r for r in results if isinstance(r, Reply) and r.error == 0]
        if not ok:
            first = next((r for r in results if isinstance(r, BaseException)), None)
            if isinstance(first, asyncio.CancelledError):
                raise first
            errors = sorted({r.error for r in results if isinstance(r, Reply)})
            raise QueryFailed(
                "no node accepted the commit", target=target.hex(), errors=errors, cause=repr(first)
            )
        return PutResult(target, tuple(query.closest_nodes), len(ok))


_STORAGE_COMMANDS: Final = frozenset(
    {
        C.FIND_PEER,
        C.LOOKUP,
        C.ANNOUNCE,
        C.UNANNOUNCE,
        C.MUTABLE_PUT,
        C.MUTABLE_GET,
        C.IMMUTABLE_PUT,
        C.IMMUTABLE_GET,
        C.PLUGIN,  # no plugins here: accepted and left unanswered, as JS does for unknown ones
    }
)


async def _first(stream: QueryStream[T]) -> T | None:
    """The first item of ``stream`` (the query is stopped right after), or None."""
    try:
        async for item in stream:
            return item
        return None
    finally:
        await stream.aclose()


def _map_nothing(reply: QueryReply) -> None:
    return None


def _check_target(target: bytes) -> None:
    if len(target) != 32:
        raise EncodeError("a DHT target is 32 bytes", length=len(target))


__all__ = [
    "PUBLIC_BOOTSTRAP",
    "FindPeerReply",
    "HyperDht",
    "ImmutableRecord",
    "LookupReply",
    "MutableRecord",
    "PeerRecord",
    "PutResult",
    "QueryFailed",
    "QueryStream",
]
