"""asyncio UDX: one UDP socket multiplexing many :class:`UdxStream` objects by stream id.

Theory of operation
-------------------
The protocol lives in :mod:`hyperlobby.swarm.udx_protocol`; this module only moves bytes and
time. :class:`UdxSocket` owns a non-blocking UDP socket registered with ``loop.add_reader``.
When it is readable we drain up to :data:`READ_BATCH` datagrams in one go (asyncio's own
datagram transport reads one per loop iteration, which caps a busy stream at one packet per
iteration), hand each to its stream's state machine, and only then let each touched stream
produce its packets, so a burst of data gets a single ack instead of one per packet.

Stream ids live in a :class:`Udx` namespace that any number of sockets share (as in
udx-native, where HyperDHT's socket pool sees one set of streams). Routing: a datagram that
starts with the UDX magic/version and names a stream id in the namespace, arriving on the
stream's socket from its remote address, goes to the stream. A stream that is not connected
yet may have a ``firewall`` hook: the first packet for it asks the hook (socket, host,
port), which returns True to reject, or connects the stream (HyperDHT connects the raw
stream there, once hole punching shows where the peer is) and lets the packet in. Anything
else is passed to the socket's ``on_message`` (dht-rpc shares the socket with UDX) or dropped.

Sending uses ``sendto`` directly. If the kernel buffer is full the datagrams wait in a
bounded backlog drained by a writer callback; past the bound they are dropped, which the
stream's retransmission already handles, so a flood cannot grow memory.

Per-packet costs, not per-byte ones, limit UDX in Python, so on Linux the socket uses UDP
segmentation offload: the state machine hands over bursts (full-size packets end to end in
one buffer) and each goes out as one ``sendmsg`` with ``UDP_SEGMENT`` (the kernel cuts it
back into ordinary datagrams, so the peer, udx-native included, sees exactly what separate
sends would produce); lone datagrams of equal size in a row are folded the same way.
``UDP_GRO`` lets one ``recvmsg`` return a run of same-sized datagrams; when the first names
one of our streams, the stream takes the run's leading in-order data in one step
(``receive_run``) and the remaining datagrams are routed one by one. Either offload is
switched off for good the first time the kernel refuses it.

For code written against TCP, :class:`UdxTransport` gives a stream the ``asyncio.Transport``
face (and :func:`open_connection` a reader/writer pair), so the secret-stream and replication
adapters run over UDX unchanged.

Each stream keeps one timer handle, armed at the state machine's next deadline. Writes are
coalesced: ``write`` only schedules a flush for the end of the current loop iteration.
Reading is either pull (``await read()``) or push (``on_data``/``on_end`` callbacks, for
protocol-style users such as a secret-stream adapter). Closed streams linger for
:data:`~hyperlobby.swarm.udx_protocol.LINGER` seconds so the peer's retransmitted END still
gets our ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
import socket as _socket
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

from hyperlobby.errors import HyperlobbyError, ProtocolError
from hyperlobby.swarm.udx_protocol import (
    DEFAULT_PAYLOAD,
    DEFAULT_RECV_WINDOW,
    DEFAULT_TIMEOUT,
    FLAG_DESTROY,
    HEADER_SIZE,
    LINGER,
    MAX_BURST_BYTES,
    MAX_BURST_PACKETS,
    MAX_UDX_NATIVE_PAYLOAD,
    Burst,
    StreamClosed,
    StreamData,
    StreamEnd,
    StreamEvent,
    StreamMessage,
    UdxStreamState,
    is_udx,
    peek_stream_id,
)

__all__ = [
    "MAX_UDX_NATIVE_PAYLOAD",
    "Address",
    "Firewall",
    "Udx",
    "UdxSocket",
    "UdxStream",
    "UdxTransport",
    "open_connection",
]

READ_BATCH = 256
_LINUX = sys.platform.startswith("linux")
_SOL_UDP = 17
_UDP_SEGMENT = 103  # linux/udp.h: send-side segmentation offload
_UDP_GRO = 104  # linux/udp.h: receive-side coalescing; the segment size comes back in a cmsg
_GSO_MAX_SEGMENTS = MAX_BURST_PACKETS
_GSO_MAX_BYTES = MAX_BURST_BYTES
_CMSG_SPACE = _socket.CMSG_SPACE(4) if hasattr(_socket, "CMSG_SPACE") else 0
MAX_BACKLOG = 4096
_DEFAULT_TTL = 64  # what send(ttl=...) restores: the usual initial hop limit (and udx-native's)
# Unsent bytes a writer may queue before drain() waits (in-flight bytes are bounded by the
# windows instead). 1 MiB keeps a window's worth flowing, since a flush runs every loop
# iteration, without letting a bulk writer bury later messages (a replication request, say)
# behind megabytes; measured faster than 4 MiB in bench_udx too (a smaller working set).
DEFAULT_HIGH_WATER = 1024 * 1024
_ALLOWED_HOSTS = ("127.0.0.1", "::1", "localhost")

Address = tuple[str, int]


Firewall = Callable[["UdxSocket", str, int], bool]


class Udx:
    """A namespace of stream ids shared by sockets (udx-native's ``new UDX()``)."""

    def __init__(self) -> None:
        self.streams: dict[int, UdxStream] = {}
        self.sockets: list[UdxSocket] = []

    async def bind(
        self, host: str = "127.0.0.1", port: int = 0, *, buffer_size: int = 4 << 20, offload: bool = True
    ) -> UdxSocket:
        """Bind a UDP socket in this namespace and start reading."""
        return await UdxSocket.bind(host, port, buffer_size=buffer_size, offload=offload, udx=self)

    def create_stream(
        self,
        stream_id: int | None = None,
        *,
        firewall: Firewall | None = None,
        max_payload: int = DEFAULT_PAYLOAD,
        recv_window: int = DEFAULT_RECV_WINDOW,
        timeout: float = DEFAULT_TIMEOUT,
        keepalive: float | None = None,
        high_water: int = DEFAULT_HIGH_WATER,
        mtu_probing: bool | None = None,
    ) -> UdxStream:
        """A new stream with ``stream_id`` (random free id if None); connect it before use.

        ``high_water`` is how many unsent bytes writes may queue before ``drain()`` waits.
        ``mtu_probing`` (default: only for the default ``max_payload``) lets the stream try
        larger packets, up to what a 1500-byte link carries, as udx-native does.

        ``max_payload`` above :data:`MAX_UDX_NATIVE_PAYLOAD` is only for links whose other end
        is this implementation: udx-native truncates such datagrams without noticing.
        """
        if stream_id is None:
            for _ in range(64):
                stream_id = random.getrandbits(32)
                if stream_id not in self.streams:
                    break
            else:  # pragma: no cover - 64 collisions among 2**32 ids
                raise ProtocolError("no free UDX stream id")
        if stream_id in self.streams:
            raise ProtocolError("UDX stream id already in use", stream_id=stream_id)
        state = UdxStreamState(
            stream_id,
            max_payload=max_payload,
            recv_window=recv_window,
            timeout=timeout,
            keepalive=keepalive,
            mtu_probing=mtu_probing,
        )
        stream = UdxStream(self, state, high_water, firewall)
        self.streams[stream_id] = stream
        return stream

    async def close(self) -> None:
        """Close every socket (which destroys their streams) and any stream never connected."""
        for sock in list(self.sockets):
            await sock.close()
        for stream in list(self.streams.values()):
            stream.destroy()
        self.streams.clear()

    def _forget(self, stream: UdxStream) -> None:
        if self.streams.get(stream.id) is stream:
            del self.streams[stream.id]


class UdxSocket:
    """A bound UDP socket carrying UDX streams (and, via ``on_message``, other datagrams)."""

    def __init__(self, sock: _socket.socket, *, offload: bool = True, udx: Udx | None = None) -> None:
        sock.setblocking(False)
        self.udx = udx if udx is not None else Udx()
        self.udx.sockets.append(self)
        self._sock = sock
        self._gso = offload and _LINUX
        self._gro = False
        if offload and _LINUX and _CMSG_SPACE:
            try:
                sock.setsockopt(_SOL_UDP, _UDP_GRO, 1)
                self._gro = True
            except OSError:
                pass
        self._loop = asyncio.get_running_loop()
        self._backlog: deque[tuple[bytes | bytearray, Address]] = deque()
        self._writer_on = False
        self._closed = False
        self.on_message: Callable[[bytes, Address], None] | None = None
        self.dropped_sends = 0
        host, port = sock.getsockname()[:2]
        self.address: Address = (host, port)
        self._loop.add_reader(sock.fileno(), self._read_ready)

    @classmethod
    async def bind(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        buffer_size: int = 4 << 20,
        offload: bool = True,
        udx: Udx | None = None,
    ) -> UdxSocket:
        """Bind a UDP socket and start reading; without ``udx`` it gets a namespace of its own."""
        family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
        sock = _socket.socket(family, _socket.SOCK_DGRAM)
        try:
            for opt in (_socket.SO_RCVBUF, _socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(_socket.SOL_SOCKET, opt, buffer_size)
            sock.bind((host, port))
        except BaseException:
            sock.close()
            raise
        return cls(sock, offload=offload, udx=udx)

    @property
    def closed(self) -> bool:
        return self._closed

    def create_stream(self, stream_id: int | None = None, **options: Any) -> UdxStream:
        """A stream in this socket's namespace that connects through this socket by default."""
        if self._closed:
            raise ProtocolError("UDX socket is closed")
        stream = self.udx.create_stream(stream_id, **options)
        stream.default_socket = self
        return stream

    def send(self, data: bytes, address: Address, *, ttl: int | None = None) -> None:
        """Send one raw datagram (not UDX) from this socket; best effort, like UDP itself.

        ``ttl`` sets the hop limit of this one datagram (holepunching opens our own NAT's
        mapping with packets that die before the remote's NAT)."""
        if ttl is None or self._closed:
            self._sendto(data, address)
            return
        if self._sock.family == _socket.AF_INET6:
            level, option = _socket.IPPROTO_IPV6, _socket.IPV6_UNICAST_HOPS
        else:
            level, option = _socket.IPPROTO_IP, _socket.IP_TTL
        with contextlib.suppress(OSError):  # no hop limit to set here: the default one goes
            self._sock.setsockopt(level, option, ttl)
        try:
            self._sendto(data, address)
        finally:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(level, option, _DEFAULT_TTL)

    async def close(self) -> None:
        """Destroy every stream and close the socket."""
        if self._closed:
            return
        for stream in list(self.udx.streams.values()):
            if stream.socket is self or (stream.socket is None and stream.default_socket is self):
                stream.destroy()
        if self in self.udx.sockets:
            self.udx.sockets.remove(self)
        self._closed = True
        self._loop.remove_reader(self._sock.fileno())
        if self._writer_on:
            self._loop.remove_writer(self._sock.fileno())
            self._writer_on = False
        self._backlog.clear()
        self._sock.close()
        await asyncio.sleep(0)

    # --- internals -----------------------------------------------------------------------------

    def _sendto(self, data: bytes | bytearray, address: Address) -> None:
        if self._closed:
            return
        if self._backlog:
            self._queue(data, address)
            return
        try:
            self._sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            self._queue(data, address)
        except OSError as exc:  # e.g. ECONNREFUSED from an earlier ICMP: UDP is best effort
            if exc.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EMSGSIZE):
                raise

    def _send_bursts(self, bursts: list[Burst], address: Address) -> None:
        """Send in order: each multi-datagram burst as one GSO ``sendmsg``, and runs of lone
        datagrams of equal size (retransmissions, say) folded into one as well."""
        singles: list[bytes | bytearray] = []
        for buf, segment in bursts:
            if len(buf) <= segment:
                if singles and (len(buf) > len(singles[0]) or len(singles[-1]) < len(singles[0])):
                    self._send_run(singles, address)
                    singles = []
                singles.append(buf)
                if len(singles) >= _GSO_MAX_SEGMENTS or len(singles) * len(singles[0]) >= _GSO_MAX_BYTES:
                    self._send_run(singles, address)
                    singles = []
                continue
            if singles:
                self._send_run(singles, address)
                singles = []
            self._send_gso(buf, segment, address)
        if singles:
            self._send_run(singles, address)

    def _send_run(self, datagrams: list[bytes | bytearray], address: Address) -> None:
        """Datagrams all of one size but the last (which may be shorter)."""
        if len(datagrams) == 1 or not self._gso:
            for datagram in datagrams:
                self._sendto(datagram, address)
        else:
            self._send_gso(b"".join(datagrams), len(datagrams[0]), address)

    def _send_gso(self, buf: bytes | bytearray, segment: int, address: Address) -> None:
        """``buf`` holds datagrams of ``segment`` bytes end to end (the last may be shorter)."""
        if self._closed:
            return
        if self._gso and not self._backlog:
            try:
                self._sock.sendmsg(
                    [buf], [(_SOL_UDP, _UDP_SEGMENT, segment.to_bytes(2, sys.byteorder))], 0, address
                )
                return
            except (BlockingIOError, InterruptedError):
                for k in range(0, len(buf), segment):
                    self._queue(bytes(buf[k : k + segment]), address)
                return
            except OSError:  # no GSO here (old kernel, odd device): plain sends from now on
                self._gso = False
        for k in range(0, len(buf), segment):
            self._sendto(bytes(buf[k : k + segment]), address)

    def _queue(self, data: bytes | bytearray, address: Address) -> None:
        if len(self._backlog) >= MAX_BACKLOG:
            self.dropped_sends += 1
            return
        self._backlog.append((data, address))
        if not self._writer_on:
            self._writer_on = True
            self._loop.add_writer(self._sock.fileno(), self._write_ready)

    def _write_ready(self) -> None:
        backlog = self._backlog
        while backlog:
            data, address = backlog[0]
            try:
                self._sock.sendto(data, address)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                pass
            backlog.popleft()
        self._writer_on = False
        self._loop.remove_writer(self._sock.fileno())

    def _read_ready(self) -> None:
        touched: dict[int, UdxStream] = {}
        now = self._loop.time()
        sock = self._sock
        gro = self._gro
        for _ in range(READ_BATCH):
            try:
                if gro:
                    data, ancillary, _flags, address = sock.recvmsg(65536, _CMSG_SPACE)
                else:
                    data, address = sock.recvfrom(65536)
                    ancillary = None
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # ICMP errors surface here on some platforms; nothing to do
                continue
            if len(address) != 2:
                address = (address[0], address[1])  # IPv6 adds flow info and scope id
            if ancillary:
                segment = _gro_segment(ancillary)
                if segment and len(data) > segment:
                    self._route_run(data, segment, address, now, touched)
                    continue
            self._route(data, address, now, touched)
        for stream in touched.values():
            stream._flush()

    def _route_run(
        self, data: bytes, segment: int, address: Address, now: float, touched: dict[int, UdxStream]
    ) -> None:
        """A coalesced read: datagrams of ``segment`` bytes from one sender, end to end.

        When the first names a connected stream of ours at that address, the stream takes the
        leading run of its in-order data in one go; every other datagram is routed on its own.
        """
        start = 0
        if is_udx(data):
            stream = self.udx.streams.get(peek_stream_id(data))
            if stream is not None and stream.socket is self and stream.remote_address == address:
                if stream._relay_to is not None:
                    if stream._forward_run(data, segment):
                        return
                else:
                    events, start = stream.state.receive_run(data, segment, now)
                    if start:
                        stream._handle(events)
                        touched[stream.id] = stream
        for k in range(start, len(data), segment):
            self._route(data[k : k + segment], address, now, touched)

    def _route(self, data: bytes, address: Address, now: float, touched: dict[int, UdxStream]) -> None:
        if is_udx(data):
            stream = self.udx.streams.get(peek_stream_id(data))
            if stream is not None:
                if stream.socket is self and stream.remote_address == address:
                    _take(stream, data, now, touched)
                    return
                if stream.closed.done():
                    pass
                elif stream.socket is None and stream.firewall is not None:
                    # True rejects; to accept, the hook connects the stream (maybe elsewhere).
                    if stream.firewall(self, address[0], address[1]):
                        return
                    if stream.socket is self and stream.remote_address == address:
                        _take(stream, data, now, touched)
                    return
                elif stream.socket is not None and stream.on_new_path is not None:
                    if stream.on_new_path(self, address[0], address[1]) and not stream.closed.done():
                        _take(stream, data, now, touched)
                    return
        if self.on_message is not None:
            try:
                self.on_message(data, address)
            except Exception:  # a handler bug must not stop the socket
                self._loop.call_exception_handler({"message": "UDX on_message failed", "socket": self})


def _take(stream: UdxStream, data: bytes, now: float, touched: dict[int, UdxStream]) -> None:
    """A datagram for ``stream`` from its path: forwarded if it relays, else read."""
    if stream._relay_to is not None:
        stream._forward(data)
        return
    stream._datagram(data, now)
    touched[stream.id] = stream


def _gro_segment(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The segment size the kernel reports for a coalesced (GRO) read, or 0."""
    for level, kind, value in ancillary:
        if level == _SOL_UDP and kind == _UDP_GRO and len(value) >= 2:
            return int.from_bytes(value[:4] if len(value) >= 4 else value[:2], sys.byteorder)
    return 0


class UdxStream:
    """A reliable ordered byte stream to one remote UDX stream (see the module docstring)."""

    def __init__(self, udx: Udx, state: UdxStreamState, high_water: int, firewall: Firewall | None) -> None:
        self.udx = udx
        self.socket: UdxSocket | None = None
        self.default_socket: UdxSocket | None = None
        self.firewall = firewall
        self.state = state
        self.id = state.id
        self.high_water = high_water
        self.remote_address: Address | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._flush_scheduled = False
        self._chunks: deque[bytes] = deque()
        self._eof = False
        self._readable: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self.closed: asyncio.Future[HyperlobbyError | None] = self._loop.create_future()
        self.on_data: Callable[[bytes], None] | None = None
        self.on_end: Callable[[], None] | None = None
        self.on_close: Callable[[HyperlobbyError | None], None] | None = None
        self.on_message: Callable[[bytes], None] | None = None
        self.on_drain: Callable[[], None] | None = None
        self._paused = False
        self._end_pending = False
        self._close_pending = False
        # A connected stream's hook for a packet arriving over another path (another socket or
        # address): True takes the packet (the hook may have moved the stream there first).
        self.on_new_path: Callable[[UdxSocket, str, int], bool] | None = None
        self._relay_to: UdxStream | None = None
        self._relayed_by: list[UdxStream] = []

    @property
    def remote_id(self) -> int:
        return self.state.remote_id

    @property
    def error(self) -> HyperlobbyError | None:
        return self.state.error

    @property
    def connected(self) -> bool:
        return self.socket is not None

    def connect(self, remote_id: int, host: str, port: int, socket: UdxSocket | None = None) -> None:
        """Point the stream at the peer's stream id and address (through ``socket``, or the
        socket that created it); packets flow from now on."""
        if self.socket is not None:
            raise ProtocolError("UDX stream already connected", stream_id=self.id)
        self._attach(socket, remote_id, host, port)

    def change_remote(self, remote_id: int, host: str, port: int, socket: UdxSocket | None = None) -> None:
        """Move a connected stream to another path (a relayed connection upgraded to a direct
        one) without losing its sequence state. Unacknowledged packets are simply resent on
        the new path by the usual retransmission; udx-native instead waits for them first."""
        if self.socket is None:
            raise ProtocolError("UDX stream is not connected", stream_id=self.id)
        self._attach(socket or self.socket, remote_id, host, port)

    def _attach(self, socket: UdxSocket | None, remote_id: int, host: str, port: int) -> None:
        if not 0 <= remote_id <= 0xFFFFFFFF:
            raise ProtocolError("UDX stream ids are uint32", stream_id=self.id, remote_id=remote_id)
        socket = socket or self.default_socket
        if socket is None or socket.closed:
            raise ProtocolError("UDX stream needs an open socket to connect through", stream_id=self.id)
        if socket.udx is not self.udx:
            raise ProtocolError("UDX socket belongs to another namespace", stream_id=self.id)
        self.socket = socket
        self.state.remote_id = remote_id
        self.remote_address = (host, port)
        if ":" in host:
            self.state.set_path_ipv6()
        self._schedule_flush()

    # --- writing -------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue bytes; they go out at the end of this loop iteration (see drain())."""
        if self.closed.done():
            raise self.state.error or ProtocolError("UDX stream is closed", stream_id=self.id)
        self.state.write(data)
        self._schedule_flush()

    async def drain(self) -> None:
        """Wait until the bytes not sent yet fall to the high-water mark (what is in flight
        is bounded by the windows, so it does not count: a full window keeps flowing)."""
        while self.state.send_pending > self.high_water and not self.closed.done():
            if self._drained is None or self._drained.done():
                self._drained = self._loop.create_future()
            waiters: list[asyncio.Future[Any]] = [self._drained, self.closed]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if self.closed.done() and self.state.error is not None:
            raise self.state.error

    def end(self) -> None:
        """Half-close: the peer reads EOF after everything written."""
        self.state.end()
        self._schedule_flush()

    def send_message(self, data: bytes) -> None:
        """An unreliable datagram on this stream (udx-native ``stream.send``)."""
        self.state.send_message(data)
        self._schedule_flush()

    async def close(self, timeout: float = 10.0) -> None:
        """End our side and wait (bounded) for a clean close; destroy if the peer stalls."""
        self.end()
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self.destroy()

    def destroy(self, *, notify: bool = True) -> None:
        """Abort now: a DESTROY packet tells the peer (unless ``notify`` is False: a relay's
        streams end without one, as udx-native's do), and no more data is sent or received."""
        self._handle(self.state.destroy(notify=notify))
        self._flush()

    async def wait_closed(self) -> HyperlobbyError | None:
        return await asyncio.shield(self.closed)

    # --- relaying ------------------------------------------------------------------------------

    @property
    def relaying(self) -> bool:
        return self._relay_to is not None

    def relay_to(self, destination: UdxStream) -> None:
        """Forward every datagram this stream receives to ``destination``'s peer instead of
        reading it: only the stream id in the header changes (to ``destination``'s remote id),
        as udx-native relays. The stream keeps no state of its own (no acks, no timers); when
        either stream closes, the other is closed too, silently. A datagram that arrives while
        ``destination`` is not connected yet is dropped (its sender retransmits)."""
        if self._relay_to is not None:
            raise ProtocolError("UDX stream already relays", stream_id=self.id)
        if destination.closed.done() or self.closed.done():
            raise ProtocolError("cannot relay to or from a closed UDX stream", stream_id=self.id)
        self._relay_to = destination
        destination._relayed_by.append(self)

    def _forward_run(self, data: bytes, segment: int) -> bool:
        """Forward a coalesced read as one segmentation-offload send (so the far end gets a
        coalesced read too), when every datagram in it is a whole-header packet of this stream
        and none is a DESTROY; False leaves it to :meth:`_forward`, datagram by datagram."""
        destination = self._relay_to
        if destination is None or self.closed.done() or destination.closed.done():
            return False
        socket, address = destination.socket, destination.remote_address
        count = -(-len(data) // segment)
        if socket is None or address is None or len(data) - (count - 1) * segment < HEADER_SIZE:
            return False
        for k in (0, 1, 4, 5, 6, 7):  # magic, version and our stream id, in every datagram
            if data[k::segment] != bytes((data[k],)) * count:
                return False
        if any(flags & FLAG_DESTROY for flags in data[2::segment]):
            return False
        out = bytearray(data)
        remote_id = destination.state.remote_id.to_bytes(4, "little")
        for k in range(4):
            out[4 + k :: segment] = bytes((remote_id[k],)) * count
        socket._send_gso(out, segment, address)
        return True

    def _forward(self, data: bytes) -> None:
        destination = self._relay_to
        if destination is None or self.closed.done():
            return
        socket, address = destination.socket, destination.remote_address
        if socket is not None and address is not None and not destination.closed.done():
            out = bytearray(data)
            out[4:8] = destination.state.remote_id.to_bytes(4, "little")
            socket._sendto(out, address)
        if data[2] & FLAG_DESTROY:  # the end of the relayed connection: ours too
            self.destroy(notify=False)

    # --- reading -------------------------------------------------------------------------------

    async def read(self, n: int = -1) -> bytes:
        """Next bytes (up to ``n`` if given); b"" at end of stream. Raises if the stream failed."""
        while not self._chunks:
            if self._eof or self.closed.done():
                if self.state.error is not None and not self._eof:
                    raise self.state.error
                return b""
            if self._readable is None or self._readable.done():
                self._readable = self._loop.create_future()
            await self._readable
        chunks = self._chunks
        if n < 0:
            # One packet per chunk: hand out everything we hold at once.
            chunk = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
        else:
            parts: list[bytes] = []
            size = 0
            while chunks and size < n:
                part = chunks.popleft()
                if size + len(part) > n:
                    chunks.appendleft(part[n - size :])
                    part = part[: n - size]
                parts.append(part)
                size += len(part)
            chunk = parts[0] if len(parts) == 1 else b"".join(parts)
        if self.state.read_done(len(chunk)):
            self._schedule_flush()
        return chunk

    async def read_all(self, limit: int = 1 << 30) -> bytes:
        """Everything until EOF (at most ``limit`` bytes)."""
        parts = bytearray()
        while len(parts) <= limit:
            chunk = await self.read()
            if not chunk:
                break
            parts += chunk
        return bytes(parts)

    # --- internals -----------------------------------------------------------------------------

    def _datagram(self, data: bytes, now: float) -> None:
        self._handle(self.state.receive(data, now))

    def _handle(self, events: list[StreamEvent]) -> None:
        for event in events:
            if isinstance(event, StreamData):
                if self.on_data is not None and not self._paused and not self._chunks:
                    if self.state.read_done(len(event.data)):
                        self._schedule_flush()
                    self.on_data(event.data)
                else:  # pull mode, or push mode while paused: hold it (the window shrinks)
                    self._chunks.append(event.data)
                    self._wake_reader()
            elif isinstance(event, StreamEnd):
                self._eof = True
                self._wake_reader()
                if self.on_end is not None:
                    if self._chunks:
                        self._end_pending = True  # after the held data
                    else:
                        self.on_end()
            elif isinstance(event, StreamMessage):
                if self.on_message is not None:
                    self.on_message(event.data)
            elif isinstance(event, StreamClosed):
                self._on_closed(event.error)

    def pause_reading(self) -> None:
        """Push mode: stop calling ``on_data``; data is held and our receive window closes."""
        self._paused = True

    def resume_reading(self) -> None:
        """Push mode: hand over what was held, then carry on."""
        self._paused = False
        self._deliver_held()

    def _deliver_held(self) -> None:
        while self._chunks and not self._paused and self.on_data is not None:
            chunk = self._chunks.popleft()
            if self.state.read_done(len(chunk)):
                self._schedule_flush()
            self.on_data(chunk)
        if self._chunks or self._paused:
            return
        if self._end_pending and self.on_end is not None:
            self._end_pending = False
            self.on_end()
        if self._close_pending and self.on_close is not None:
            self._close_pending = False
            self.on_close(self.state.error)

    def _on_closed(self, error: HyperlobbyError | None) -> None:
        if not self.closed.done():
            self.closed.set_result(error)
        relayed, self._relayed_by = self._relayed_by, []
        for stream in relayed:  # streams relaying to this one end with it (as in udx-native)
            stream.destroy(notify=False)
        self._wake_reader()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if self.state.destroyed:
            self._loop.call_soon(self.udx._forget, self)
        else:
            self._loop.call_later(LINGER, self.udx._forget, self)
        if self.on_close is not None:
            if self._chunks and error is None and self.on_data is not None:
                self._close_pending = True  # a clean close waits for held data to be taken
            else:
                self.on_close(error)

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        socket, address = self.socket, self.remote_address
        if socket is None or address is None:
            return
        bursts = self.state.bursts_to_send(self._loop.time())
        if bursts:
            socket._send_bursts(bursts, address)
        if self.state.send_pending <= self.high_water:
            drained = self._drained
            if drained is not None and not drained.done():
                drained.set_result(None)
            if self.on_drain is not None:
                self.on_drain()
        self._arm()

    def _arm(self) -> None:
        deadline = self.state.next_deadline()
        if deadline is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        # Re-arm only when the deadline moved earlier; a timer that fires early just re-arms.
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.socket is None or self.socket.closed:
            return
        self._handle(self.state.on_timer(self._loop.time()))
        self._flush()


class UdxTransport(asyncio.Transport):
    """The asyncio Transport face of a :class:`UdxStream`.

    Protocol-based code written for TCP (``asyncio.StreamReader``/``StreamWriter``, the
    replication connection) runs over UDX unchanged. Write back-pressure follows the
    stream's unsent bytes, as a TCP transport's follows its buffer (``pause_writing`` above
    the high-water mark, ``resume_writing`` once they fall to a quarter; in-flight bytes are
    bounded by the windows, as they are by TCP's socket buffer); ``pause_reading`` holds data in the
    stream, which closes the receive window so the peer slows down. ``close`` ends our side
    and gives the peer ``close_timeout`` seconds to end theirs before destroying.
    """

    def __init__(
        self, stream: UdxStream, protocol: asyncio.BaseProtocol, *, close_timeout: float = 10.0
    ) -> None:
        super().__init__(
            extra={
                "peername": stream.remote_address,
                "sockname": stream.socket.address if stream.socket is not None else None,
                "udx_stream": stream,
            }
        )
        self._stream = stream
        self._protocol = protocol
        self._close_timeout = close_timeout
        self._closing = False
        self._lost = False
        self._writing_paused = False
        self._high = stream.high_water
        self._low = stream.high_water // 4
        self._close_task: asyncio.Task[None] | None = None
        stream.on_data = self._on_data
        stream.on_end = self._on_end
        stream.on_close = self._on_close
        stream.on_drain = self._on_drain
        protocol.connection_made(self)
        stream._deliver_held()  # what arrived before the protocol was attached (unless it paused)
        if stream.closed.done():
            self._on_close(stream.state.error)

    # --- callbacks from the stream ---------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        assert isinstance(self._protocol, asyncio.Protocol)
        self._protocol.data_received(data)

    def _on_end(self) -> None:
        assert isinstance(self._protocol, asyncio.Protocol)
        if not self._protocol.eof_received():
            self.close()

    def _on_close(self, error: HyperlobbyError | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._protocol.connection_lost(error)

    def _on_drain(self) -> None:
        if self._writing_paused and self._stream.state.send_pending <= self._low:
            self._writing_paused = False
            self._protocol.resume_writing()

    # --- asyncio.WriteTransport ------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._stream.closed.done():
            return  # like a closing socket transport: late writes are dropped
        self._stream.write(data)
        if not self._writing_paused and self._stream.state.send_pending > self._high:
            self._writing_paused = True
            self._protocol.pause_writing()

    def write_eof(self) -> None:
        self._stream.end()

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return self._stream.state.send_pending

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = high if high is not None else self._stream.high_water
        self._low = low if low is not None else self._high // 4

    # --- asyncio.ReadTransport / BaseTransport -------------------------------------------------

    def pause_reading(self) -> None:
        self._stream.pause_reading()

    def resume_reading(self) -> None:
        self._stream.resume_reading()

    def is_reading(self) -> bool:
        return not self._stream._paused

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._close_task = asyncio.get_running_loop().create_task(self._stream.close(self._close_timeout))

    def abort(self) -> None:
        self._closing = True
        self._stream.destroy()

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol


async def open_connection(
    stream: UdxStream, *, limit: int = 1 << 20
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """(reader, writer) over a connected UDX stream, like ``asyncio.open_connection`` for TCP."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = UdxTransport(stream, protocol)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer
