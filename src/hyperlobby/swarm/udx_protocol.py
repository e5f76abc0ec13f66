"""Sans-IO UDX: the packet codec and one stream's reliability/congestion state machine.

UDX (npm ``udx-native``) runs reliable, ordered, congestion-controlled byte streams over UDP.
Many streams share one socket; each packet names the *receiver's* stream id, so a socket
demultiplexes with a single dictionary lookup. There is no handshake: both ends pick their
own id, learn the other's out of band (in Hyperswarm the DHT handshake carries them) and
start sending.

Wire format (confirmed by capturing udx-native 1.21 talking to itself on loopback)
---------------------------------------------------------------------------------
Every packet starts with a 20-byte header, all integers little-endian::

    0    magic      0xff
    1    version    0x01
    2    type       bit flags, below
    3    data off.  bytes to skip after the header before the payload (MTU probes pad here)
    4-8  stream id  the receiving stream's id
    8-12 rwnd       receive window in bytes (udx-native always advertises 4 MiB)
    12-16 seq       packet sequence number of this packet (one per DATA/END packet)
    16-20 ack       next sequence number expected from the peer (cumulative)

Type flags: DATA 0x01, END 0x02 (also consumes a sequence number; udx-native sets DATA|END
on a final packet that still carries bytes), SACK 0x04, MESSAGE 0x08 (an unreliable
datagram riding on the stream, neither sequenced nor acknowledged), DESTROY 0x10 (abort;
udx-native surfaces "connection reset by peer"), HEARTBEAT 0x20 (answered with an ack).

Sequence numbers count *packets*, not bytes. Acks are plain header-only packets carrying the
sender's next sequence number in ``seq``. When the receiver holds out-of-order packets it
sets SACK and appends ``(start, end)`` uint32 pairs (``end`` exclusive, ascending) straight
after the header, with the data offset left at zero. udx-native acknowledges every DATA/END
packet immediately, starts with a congestion window of 10 packets and 1152-byte payloads
(1172-byte datagrams), then probes larger payloads by padding a DATA packet via the data
offset (up to 1472-byte datagrams). It reads datagrams into 2048-byte buffers, so nothing
longer may be sent to it (see :data:`MAX_UDX_NATIVE_PAYLOAD`). A packet for an unknown
stream id, or one whose first two bytes are not ff 01, is not UDX (dht-rpc shares the
socket) and goes to the socket's datagram handler.

Theory of operation
-------------------
:class:`UdxStreamState` owns no socket and no clock: callers feed it datagrams with
:meth:`~UdxStreamState.receive` and timer expiries with :meth:`~UdxStreamState.on_timer`,
passing ``now`` (seconds, monotonic) each time; they collect events from those calls and
datagrams from :meth:`~UdxStreamState.packets_to_send` (or, grouped for segmentation
offload, :meth:`~UdxStreamState.bursts_to_send`), and ask
:meth:`~UdxStreamState.next_deadline` when to call back. Sequence numbers are unwrapped to
unbounded integers inside (the wire carries them modulo 2**32), so comparisons never need
serial-number arithmetic.

*Sending.* Writes are kept as written (a queue of bytes objects) and cut into packets only
when the congestion window (in packets) and the peer's advertised window (in bytes) allow,
so a slow network never copies data into thousands of packets ahead of time. Full-size
packets are cut in bursts (up to what one UDP segmentation-offload send carries) built with
C-level operations only: payloads cut from the written chunk by one ``struct`` unpack,
joined behind copies of one header, then the sequence numbers written by strided slice
assignment. In Python the cost of a packet, not
of a byte, is what limits throughput, so nothing is done per packet that can be done per
burst. Every packet stays outstanding until cumulatively acked: a burst as one run record
(first sequence, count, shared buffer, send time) until one of its packets needs a state
of its own (SACKed, lost, partially acked), when the run is split into per-packet records.

*Loss.* A packet is declared lost when three later packets were SACKed (the receiver's
cumulative ack stalled behind it), or when the retransmission timer (RFC 6298 estimator,
Karn's rule, exponential backoff) fires, in which case everything outstanding is resent.

*Path MTU.* A stream made with the default payload (1152 bytes) probes for larger packets as
udx-native does. While plenty of data is queued, it sends one full packet padded through
the data offset to a bigger size (at most 255 bytes more, the offset being one byte). If
that very transmission is acked, the bigger size becomes the payload. A lost probe is
resent unpadded (its data fits the size already known to pass) and is not taken as
congestion. Three losses at one size lower the target, halving the gap down to 32-byte
steps. A 1500-byte path takes two round trips: 1152 -> 1407 -> 1452 (1432 over IPv6).

*Congestion control* is NewReno-style: slow start, additive increase, halve once per loss
episode (recovery ends when the ack passes the highest sequence sent at its start), and fall
back to one packet after a timeout. udx-native uses BBR; the wire is the same either way.

*Receiving.* In-order packets are delivered at once; others wait in a bounded reorder buffer
whose contiguous runs are kept as ranges, which are exactly the SACK blocks to advertise.
One ack is owed per batch of received DATA/END packets and goes out on the next
:meth:`packets_to_send` (callers that read many datagrams at once get one ack for all).
A coalesced read (UDP GRO: many datagrams of one size end to end) goes to
:meth:`~UdxStreamState.receive_run`, which takes its leading run of in-order DATA as one
piece of data and leaves the rest to ``receive``. It checks the headers as columns: read
through one uint32 view with the segment as stride, each header field of the whole run is
one C-level slice compared at once, so a clean run costs no Python step per packet.

*Flow control.* We advertise ``recv_window`` minus what the application has not read yet
(reported with :meth:`~UdxStreamState.read_done`) and what waits for reordering. A packet
that does not fit is refused and left for the sender to retransmit, and reading that reopens
a small window sends an unprompted window update. udx-native honours the window we
advertise (it always advertises 4 MiB itself); our sender keeps in-flight bytes within the
peer's window and probes a closed one with heartbeats.

*Closing.* ``end()`` queues an END packet after the data. The stream is finished once our
END is acked and the peer's END was delivered; it then lingers (keeps acking retransmitted
packets, in case our last ack was lost) until the caller forgets it. ``destroy()`` sends a
DESTROY and stops at once; receiving one closes with a :class:`ProtocolError`.
"""

from __future__ import annotations

import array
import bisect
import functools
import struct
import sys
from collections import deque
from dataclasses import dataclass

from hyperlobby.errors import DecodeError, EncodeError, HyperlobbyError, ProtocolError

MAGIC = 0xFF
VERSION = 1
HEADER_SIZE = 20

FLAG_DATA = 0x01
FLAG_END = 0x02
FLAG_SACK = 0x04
FLAG_MESSAGE = 0x08
FLAG_DESTROY = 0x10
FLAG_HEARTBEAT = 0x20
KNOWN_FLAGS = 0x3F

#: Payload bytes per DATA packet udx-native uses before MTU probing (1200 - IP/UDP - header).
DEFAULT_PAYLOAD = 1152
#: Largest payload that still fits a 1500-byte Ethernet MTU (udx-native's probing ceiling).
MAX_ETHERNET_PAYLOAD = 1500 - 28 - HEADER_SIZE
#: Largest payload udx-native can receive: it reads datagrams into 2048-byte buffers and
#: silently truncates longer ones (measured: 2028 works, 2029 corrupts the stream). Larger
#: payloads are for Python-only links (loopback, jumbo frames) and must never reach JS.
MAX_UDX_NATIVE_PAYLOAD = 2048 - HEADER_SIZE
#: The same for IPv6, whose header is 20 bytes longer.
MAX_ETHERNET_PAYLOAD_V6 = 1500 - 48 - HEADER_SIZE
#: Path MTU probing (as udx-native does it, RFC 8899 style): a probe is a DATA packet padded
#: through the data offset, so it is at most this much larger than the packets already
#: known to pass; a size failing this many probes in a row is given up.
MAX_PROBE_PADDING = 255
MTU_PROBE_TRIES = 3
MIN_MTU_STEP = 32
#: The receive window udx-native advertises; we advertise the same by default.
DEFAULT_RECV_WINDOW = 4 * 1024 * 1024

_U32 = 0xFFFFFFFF
_BYTE_RAMP = bytes(range(256))
_U32_CODE = next(code for code in "IL" if array.array(code).itemsize == 4)
_HEADER = struct.Struct("<BBBBIIII")
_RANGE = struct.Struct("<II")
# The header as five words: (magic, version, type, data offset) as one, then stream id, rwnd,
# seq, ack. A DATA packet without padding leads with this word:
_WORDS = struct.Struct("<IIIII")
_PLAIN_DATA = MAGIC | VERSION << 8 | FLAG_DATA << 16
# Header words can be read through a native uint32 view only where that is little-endian.
_WORD_VIEWS = sys.byteorder == "little" and struct.calcsize("I") == 4

MAX_SACK_RANGES = 32  # per ack we send; keeps an ack packet well under any MTU
MAX_SACK_RANGES_RECEIVED = 128  # more than this from a peer is ignored (bounded work per ack)
MAX_REORDER_PACKETS = 8192  # packets held out of order; further ones are dropped (they'll be resent)
MAX_CWND = 4096  # packets
INITIAL_CWND = 10
DUP_THRESH = 3
MIN_RTO = 0.2
MAX_RTO = 5.0
INITIAL_RTO = 1.0
DEFAULT_TIMEOUT = 20.0  # seconds without ack progress while data is outstanding
LINGER = 2.0
#: Limits of one burst (one offload send): the kernel takes at most 64 segments per send and
#: the whole must fit an IP datagram.
MAX_BURST_PACKETS = 64
MAX_BURST_BYTES = 65000


@functools.lru_cache(maxsize=16)
def _segment_struct(segment: int) -> struct.Struct:
    """A header followed by ``segment - HEADER_SIZE`` skipped bytes: iter_unpack over a
    coalesced read yields every datagram's header in one pass."""
    return struct.Struct(f"<IIIII{segment - HEADER_SIZE}x")


@functools.lru_cache(maxsize=256)
def _payload_struct(size: int, count: int) -> struct.Struct:
    """``count`` payloads of ``size`` bytes end to end: one ``unpack_from`` cuts a burst's
    payloads out of a written chunk without a Python step per packet."""
    return struct.Struct(f"{size}s" * count)


@functools.lru_cache(maxsize=256)
def _strip_struct(segment: int, count: int) -> struct.Struct:
    """``count`` datagrams of ``segment`` bytes end to end, headers skipped: one
    ``unpack_from`` yields their payloads for a join to lay end to end (cheaper than a
    Python-level slice per datagram)."""
    return struct.Struct(f"{HEADER_SIZE}x{segment - HEADER_SIZE}s" * count)


@functools.lru_cache(maxsize=1024)
def _column(word: int, count: int) -> array.array[int]:
    """``count`` copies of one uint32, to compare a header column with in one step."""
    return array.array("I", [word]) * count


def is_udx(datagram: bytes | bytearray | memoryview) -> bool:
    """True if a datagram starts like a UDX packet (magic + version), so a socket can route it."""
    return len(datagram) >= HEADER_SIZE and datagram[0] == MAGIC and datagram[1] == VERSION


def peek_stream_id(datagram: bytes | bytearray | memoryview) -> int:
    """The receiving stream id of a datagram already checked with :func:`is_udx`."""
    return int.from_bytes(datagram[4:8], "little")


@dataclass(frozen=True, slots=True)
class Packet:
    """One UDX packet. ``stream_id`` is the receiver's id; ``sacks`` are (start, end) pairs."""

    type: int
    stream_id: int
    recv_window: int
    seq: int
    ack: int
    data: bytes = b""
    sacks: tuple[tuple[int, int], ...] = ()
    padding: int = 0

    def encode(self) -> bytes:
        """Serialise. SACK ranges go right after the header, payload after ``padding`` zeros."""
        for name in ("stream_id", "recv_window", "seq", "ack"):
            value = getattr(self, name)
            if not 0 <= value <= _U32:
                raise EncodeError("UDX header field out of range", field=name, value=value)
        if not 0 <= self.type <= 0xFF or not 0 <= self.padding <= 0xFF:
            raise EncodeError("UDX type or padding out of range", type=self.type, padding=self.padding)
        head = _HEADER.pack(
            MAGIC, VERSION, self.type, self.padding, self.stream_id, self.recv_window, self.seq, self.ack
        )
        parts = [head]
        for start, end in self.sacks:
            parts.append(_RANGE.pack(start & _U32, end & _U32))
        if self.padding:
            parts.append(bytes(self.padding))
        parts.append(self.data)
        return b"".join(parts)


def decode_packet(datagram: bytes | bytearray | memoryview) -> Packet:
    """Parse one datagram; anything that is not a well-formed UDX packet raises DecodeError.

    A SACK packet's body is its ranges (udx-native never puts data on one); otherwise the
    payload starts ``data offset`` bytes after the header. A trailing partial range is
    ignored rather than rejected, as a peer from the future might append fields.
    """
    if len(datagram) < HEADER_SIZE:
        raise DecodeError("UDX packet shorter than its header", length=len(datagram))
    magic, version, type_, offset, stream_id, rwnd, seq, ack = _HEADER.unpack_from(datagram, 0)
    if magic != MAGIC or version != VERSION:
        raise DecodeError("not a UDX packet", magic=magic, version=version)
    body = bytes(datagram[HEADER_SIZE:])
    if type_ & FLAG_SACK and not type_ & (FLAG_DATA | FLAG_END | FLAG_MESSAGE):
        count = min(len(body) // 8, MAX_SACK_RANGES_RECEIVED)
        sacks = tuple(_RANGE.unpack_from(body, 8 * i) for i in range(count))
        return Packet(type_, stream_id, rwnd, seq, ack, b"", sacks, 0)
    if offset > len(body):
        raise DecodeError("UDX data offset past the end of the packet", offset=offset, length=len(body))
    return Packet(type_, stream_id, rwnd, seq, ack, body[offset:], (), offset)


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamData:
    """In-order stream bytes from the peer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """An unreliable datagram the peer sent on this stream (MESSAGE packet)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The peer ended its direction: no more data will arrive."""


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """The stream is finished. ``error`` is None after a clean end in both directions."""

    error: HyperlobbyError | None


StreamEvent = StreamData | StreamMessage | StreamEnd | StreamClosed

#: ``(buffer, segment)``: datagrams of ``segment`` bytes laid end to end in ``buffer`` (the
#: last may be shorter), ready for one UDP segmentation-offload send.
Burst = tuple[bytes | bytearray, int]


def _single(datagram: bytes) -> Burst:
    return (datagram, len(datagram))


class _Out:
    """A sent DATA/END packet awaiting its cumulative ack.

    Its payload is ``buf[pos : pos + size]``: packets cut in a burst share the burst's
    buffer (headers and all) instead of each holding a copy.
    """

    __slots__ = (
        "buf",
        "flags",
        "in_flight",
        "lost",
        "pos",
        "sacked",
        "sent_at",
        "seq",
        "size",
        "transmissions",
    )

    def __init__(self, seq: int, flags: int, buf: bytes | bytearray, pos: int, size: int, now: float) -> None:
        self.seq = seq
        self.flags = flags
        self.buf = buf
        self.pos = pos
        self.size = size
        self.sent_at = now
        self.transmissions = 1
        self.in_flight = True
        self.sacked = False
        self.lost = False


class _Run:
    """Packets cut in one burst and untouched since: all full-size, in flight, sent once at
    ``sent_at``. Their payloads lie every ``segment`` bytes in ``buf`` from ``pos``. A run
    becomes per-packet :class:`_Out` records only when one of them needs a state of its
    own (SACKed, lost, a partial ack in recovery), so a clean transfer keeps one record per
    burst instead of one per packet."""

    __slots__ = ("buf", "count", "pos", "segment", "sent_at", "seq", "size")

    def __init__(
        self, seq: int, count: int, buf: bytes | bytearray, segment: int, size: int, now: float
    ) -> None:
        self.seq = seq
        self.count = count
        self.buf = buf
        self.pos = HEADER_SIZE
        self.segment = segment
        self.size = size
        self.sent_at = now


class UdxStreamState:
    """One UDX stream, sans-IO. See the module docstring for how it works."""

    def __init__(
        self,
        stream_id: int,
        *,
        remote_id: int = 0,
        initial_seq: int = 0,
        remote_initial_seq: int = 0,
        max_payload: int = DEFAULT_PAYLOAD,
        recv_window: int = DEFAULT_RECV_WINDOW,
        timeout: float = DEFAULT_TIMEOUT,
        keepalive: float | None = None,
        mtu_probing: bool | None = None,
    ) -> None:
        if not 0 <= stream_id <= _U32 or not 0 <= remote_id <= _U32:
            raise EncodeError("UDX stream ids are uint32", stream_id=stream_id, remote_id=remote_id)
        if not 1 <= max_payload <= 65000:
            raise EncodeError("UDX payload size out of range", max_payload=max_payload)
        self.id = stream_id
        self.remote_id = remote_id
        self.max_payload = max_payload
        # Path MTU probing: on by default only for the default payload size (an explicit size
        # is taken as known). The limit is what a 1500-byte link carries; 0 turns it off.
        probing = max_payload == DEFAULT_PAYLOAD if mtu_probing is None else mtu_probing
        self._mtu_limit = MAX_ETHERNET_PAYLOAD if probing and max_payload < MAX_ETHERNET_PAYLOAD else 0
        self._mtu_probe_seq: int | None = None
        self._mtu_fails = 0
        self._mtu_probe_size = self._next_probe_size()
        self.recv_window_size = recv_window
        self.timeout = timeout
        self.keepalive = keepalive
        # sender
        self._snd_una = initial_seq & _U32
        self._snd_nxt = self._snd_una
        self._out: dict[int, _Out] = {}  # per-packet records; with _runs they cover una..nxt
        self._runs: dict[int, _Run] = {}  # by first sequence number
        self._run_starts: list[int] = []  # sorted keys of _runs
        self._retx: deque[_Out] = deque()
        self._chunks: deque[bytes] = deque()  # written, not yet cut into packets
        self._chunk_off = 0  # bytes of _chunks[0] already cut
        self._pending_len = 0  # unsent bytes in _chunks
        self._end_queued = False
        self._end_seq: int | None = None
        self._messages: deque[bytes] = deque()
        self._inflight_pkts = 0
        self._inflight_bytes = 0
        self._unacked_bytes = 0
        self.cwnd = float(INITIAL_CWND)
        self.ssthresh = float(MAX_CWND)
        self._in_recovery = False
        self._recovery_point = 0
        self._highest_sacked = -1
        self._sack_done: dict[int, int] = {}
        self._loss_scan = self._snd_una
        self.remote_window = DEFAULT_RECV_WINDOW
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = INITIAL_RTO
        self._rto_deadline: float | None = None
        self._last_progress = 0.0
        self._last_send = 0.0
        self._probe_deadline: float | None = None
        self._heartbeat_due = False
        # receiver
        self._rcv_nxt = remote_initial_seq & _U32  # both ends must agree (udx-native: 0)
        self._reorder: dict[int, tuple[int, bytes]] = {}
        self._ranges: list[list[int]] = []  # sorted disjoint [start, end) runs held in _reorder
        self._reorder_bytes = 0
        self.unread_bytes = 0
        self._ack_due = False
        self._advertised = recv_window
        # lifecycle
        self.remote_ended = False
        self.destroyed = False
        self.closed = False
        self.error: HyperlobbyError | None = None
        self._destroy_due = False
        self.retransmits = 0
        self.packets_sent = 0
        self.packets_received = 0

    # --- user side -----------------------------------------------------------------------------

    @property
    def send_buffered(self) -> int:
        """Bytes written but not yet acknowledged (sent or not)."""
        return self._pending_len + self._unacked_bytes

    @property
    def send_pending(self) -> int:
        """Bytes written but not sent yet: what back-pressure looks at. Bytes in flight are
        bounded already, by the congestion window and the peer's receive window."""
        return self._pending_len

    def set_path_ipv6(self) -> None:
        """The path is IPv6: its 20 more header bytes lower what probing may reach."""
        if self._mtu_limit:
            self._mtu_limit = min(self._mtu_limit, MAX_ETHERNET_PAYLOAD_V6)
            self._mtu_probe_size = (
                self._next_probe_size() if self._mtu_probe_seq is None else self._mtu_probe_size
            )

    def _next_probe_size(self) -> int:
        """The payload the next probe tries (0: done): the most one padded packet can show,
        up to the limit (which falls when a size fails, see _probe_answered)."""
        gap = self._mtu_limit - self.max_payload
        return self.max_payload + min(gap, MAX_PROBE_PADDING) if gap > 0 else 0

    def _probe_answered(self, acked: bool) -> None:
        """The outstanding probe was acked (that size passes) or lost (maybe too big)."""
        size = self._mtu_probe_size
        self._mtu_probe_seq = None
        if acked:
            self.max_payload = size
            self._mtu_fails = 0
            self._mtu_probe_size = self._next_probe_size()
            return
        self._mtu_fails += 1
        if self._mtu_fails < MTU_PROBE_TRIES:
            return  # the same size again: one loss may just be congestion
        self._mtu_fails = 0
        self._mtu_limit = size - 1  # this size does not pass: search below it
        gap = self._mtu_limit - self.max_payload
        self._mtu_probe_size = self.max_payload + gap // 2 if gap >= MIN_MTU_STEP else 0

    @property
    def ended(self) -> bool:
        return self._end_queued

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue bytes for reliable, ordered delivery."""
        if self._end_queued or self.closed or self.destroyed:
            raise ProtocolError("write after end or close", stream_id=self.id)
        if data:
            # Kept as written (bytes are immutable, so no copy): packets are cut from it later.
            chunk = data if type(data) is bytes else bytes(data)
            self._chunks.append(chunk)
            self._pending_len += len(chunk)

    def end(self) -> None:
        """Queue the END marker after everything written so far (half-close)."""
        if self.closed or self.destroyed:
            return
        self._end_queued = True

    def send_message(self, data: bytes) -> None:
        """Queue an unreliable datagram on this stream (MESSAGE packet); it may be lost."""
        if len(data) > self.max_payload:
            raise EncodeError("UDX message larger than one packet", size=len(data), limit=self.max_payload)
        if not (self.closed or self.destroyed):
            self._messages.append(bytes(data))

    def destroy(self, *, notify: bool = True) -> list[StreamEvent]:
        """Abort: tell the peer with DESTROY (sent by the next packets_to_send) and close now.
        ``notify=False`` closes without the DESTROY (a relay's streams end silently)."""
        if self.closed:
            return []
        self.destroyed = True
        self._destroy_due = notify
        return [self._close(None)]

    def read_done(self, nbytes: int) -> bool:
        """The application consumed ``nbytes`` of delivered data: the window reopens.

        Returns True when that owes the peer a window update (it was stalled by our window),
        so the caller knows to call :meth:`packets_to_send` soon.
        """
        self.unread_bytes = max(0, self.unread_bytes - nbytes)
        # Like TCP's window update rule: only worth a packet once the window we last advertised
        # was small (a sender may be stalled on it) and reading has opened it substantially.
        if (
            self._advertised < self.recv_window_size // 2
            and self._window() >= self._advertised + 2 * self.max_payload
            and not self.closed
        ):
            self._ack_due = True
            return True
        return False

    # --- network side --------------------------------------------------------------------------

    def receive(self, datagram: bytes | bytearray | memoryview, now: float) -> list[StreamEvent]:
        """Feed one datagram addressed to this stream. Malformed packets are ignored.

        This is the hot path, so it parses the header itself instead of building a
        :class:`Packet`; the rules are exactly those of :func:`decode_packet`.
        """
        size = len(datagram)
        if size < HEADER_SIZE:
            return []
        magic, version, flags, offset, _sid, rwnd, seq, ack = _HEADER.unpack_from(datagram, 0)
        if magic != MAGIC or version != VERSION:
            return []
        sacks: tuple[tuple[int, int], ...] = ()
        if flags & FLAG_SACK and not flags & (FLAG_DATA | FLAG_END | FLAG_MESSAGE):
            count = min((size - HEADER_SIZE) // 8, MAX_SACK_RANGES_RECEIVED)
            sacks = tuple(_RANGE.unpack_from(datagram, HEADER_SIZE + 8 * i) for i in range(count))
            data = b""
        elif offset > size - HEADER_SIZE:
            return []
        else:
            data = bytes(datagram[HEADER_SIZE + offset :])
        return self._receive(flags, rwnd, seq, ack, data, sacks, now)

    def receive_run(self, buffer: bytes, segment: int, now: float) -> tuple[list[StreamEvent], int]:
        """Take the leading in-order data of a coalesced (GRO) read: datagrams of ``segment``
        bytes laid end to end (the last may be shorter). Returns the events and how many
        bytes were consumed; the caller routes the rest datagram by datagram.

        The run taken is the longest prefix of plain DATA packets for this stream carrying
        exactly the next sequence numbers and fitting our window, so the outcome is that of
        feeding them one by one to :meth:`receive`, only cheaper: the headers are checked as
        whole columns, the payloads are cut out by one struct unpack and joined into one
        :class:`StreamData`, and each distinct piggybacked (window, ack) pair is processed
        once.
        """
        size = len(buffer)
        if segment <= HEADER_SIZE or size <= segment:
            return [], 0
        if self.destroyed or self.closed or self.remote_ended or self._ranges:
            return [], 0
        count = size // segment
        if size - count * segment >= HEADER_SIZE:
            count += 1  # a shorter last datagram with a whole header
        expect = self._rcv_nxt & _U32
        found = self._whole_run(buffer, segment, count, expect) if _WORD_VIEWS and not segment % 4 else None
        run, acks = found if found is not None else self._leading_run(buffer, segment, count, expect)
        if not run:
            return [], 0
        end = min(run * segment, size)
        nbytes = end - run * HEADER_SIZE
        if nbytes > self._window() and (self.unread_bytes or run > 1):
            return [], 0  # would overrun the window: receive() refuses packet by packet
        full = end // segment
        payloads = _strip_struct(segment, full).unpack_from(buffer)
        if end > full * segment:  # a shorter last datagram
            data = b"".join([*payloads, buffer[full * segment + HEADER_SIZE : end]])
        else:
            data = b"".join(payloads)
        self.packets_received += run
        self._ack_due = True
        self._rcv_nxt += run
        self.unread_bytes += nbytes
        for rwnd, ack in acks:  # the ack part of each, as _receive handles it after the data
            if self.closed:
                break
            if ack != (self._snd_una & _U32) or self._snd_nxt > self._snd_una:
                self._on_ack(rwnd, ack, (), now)
            else:  # nothing outstanding and nothing new: only the window may have moved
                self.remote_window = rwnd
                if rwnd > 0:
                    self._probe_deadline = None
        return [StreamData(data)] if data else [], end

    def _whole_run(
        self, buffer: bytes, segment: int, count: int, expect: int
    ) -> tuple[int, list[tuple[int, int]]] | None:
        """The common case in C-level steps: all ``count`` datagrams are plain DATA for this
        stream in sequence from ``expect``. Their header words are read as strided columns of
        one uint32 view and compared whole; None when anything differs."""
        words = memoryview(buffer)[: (count - 1) * segment + HEADER_SIZE].cast("I")
        stride = segment >> 2
        # Comparing a strided view with an array of the same item type is one C loop.
        if words[0::stride] != _column(_PLAIN_DATA, count) or words[1::stride] != _column(self.id, count):
            return None
        if expect + count <= _U32 + 1:
            seqs = array.array("I", range(expect, expect + count))
        else:
            seqs = array.array("I", [(expect + i) & _U32 for i in range(count)])
        if words[3::stride] != seqs:
            return None
        rwnds, acks = words[2::stride], words[4::stride]
        if rwnds[1:] == rwnds[:-1] and acks[1:] == acks[:-1]:  # all alike: one ack to apply
            return count, [(rwnds[0], acks[0])]
        pairs: list[tuple[int, int]] = []
        for pair in zip(rwnds.tolist(), acks.tolist(), strict=True):
            if not pairs or pairs[-1] != pair:
                pairs.append(pair)
        return count, pairs

    def _leading_run(
        self, buffer: bytes, segment: int, count: int, expect: int
    ) -> tuple[int, list[tuple[int, int]]]:
        """How many leading datagrams are plain in-order DATA for this stream, header by
        header (after a loss, a duplicate or a foreign packet), with their (window, ack)
        pairs, each distinct consecutive one once."""
        size = len(buffer)
        full = min(count, size // segment)
        headers = list(_segment_struct(segment).iter_unpack(memoryview(buffer)[: full * segment]))
        if count > full:
            headers.append(_WORDS.unpack_from(buffer, full * segment))
        sid = self.id
        run = 0
        acks: list[tuple[int, int]] = []
        last_rwnd = last_ack = -1
        for lead, stream_id, rwnd, seq, ack in headers:
            if lead != _PLAIN_DATA or seq != expect or stream_id != sid:
                break
            run += 1
            expect = (expect + 1) & _U32
            if ack != last_ack or rwnd != last_rwnd:
                last_rwnd, last_ack = rwnd, ack
                acks.append((rwnd, ack))
        return run, acks

    def receive_packet(self, packet: Packet, now: float) -> list[StreamEvent]:
        """Feed one decoded packet; returns what the application should learn from it."""
        return self._receive(
            packet.type, packet.recv_window, packet.seq, packet.ack, packet.data, packet.sacks, now
        )

    def _receive(
        self,
        flags: int,
        rwnd: int,
        seq: int,
        ack: int,
        data: bytes,
        sacks: tuple[tuple[int, int], ...],
        now: float,
    ) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self.destroyed:
            return events
        self.packets_received += 1
        if flags & FLAG_DESTROY:
            if not self.closed:
                self.destroyed = True
                events.append(self._close(ProtocolError("UDX stream reset by peer", stream_id=self.id)))
            return events
        if flags & (FLAG_DATA | FLAG_END):
            self._on_sequenced(flags, seq, data, events)
        elif flags & FLAG_HEARTBEAT:
            self._ack_due = True
        if flags & FLAG_MESSAGE and not self.closed:
            events.append(StreamMessage(data))
        if not self.closed:
            if ack != (self._snd_una & _U32) or sacks or self._snd_nxt > self._snd_una:
                self._on_ack(rwnd, ack, sacks, now)
            else:
                self.remote_window = rwnd
                if rwnd > 0:
                    self._probe_deadline = None
            if self.remote_ended:
                self._maybe_finish(events)
        return events

    def on_timer(self, now: float) -> list[StreamEvent]:
        """Call at (or after) :meth:`next_deadline`: retransmission, probes, keepalive, timeout."""
        if self.closed:
            return []
        if self._rto_deadline is not None and now >= self._rto_deadline:
            if now - self._last_progress >= self.timeout:
                self.destroyed = True
                self._destroy_due = True
                return [self._close(ProtocolError("UDX stream timed out", stream_id=self.id))]
            self._on_rto(now)
        if self._probe_deadline is not None and now >= self._probe_deadline:
            self._probe_deadline = None
            self._heartbeat_due = True
        if (
            self.keepalive is not None
            and self._rto_deadline is None
            and now - self._last_send >= self.keepalive
        ):
            self._heartbeat_due = True
        return []

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`on_timer` has work to do, or None."""
        if self.closed:
            return None
        times = [t for t in (self._rto_deadline, self._probe_deadline) if t is not None]
        if self.keepalive is not None and self._rto_deadline is None:
            times.append(self._last_send + self.keepalive)
        return min(times) if times else None

    def packets_to_send(self, now: float) -> list[bytes]:
        """Datagrams to put on the wire now, in order (data first, then a pure ack if owed)."""
        return [
            bytes(buf[o : o + segment])
            for buf, segment in self.bursts_to_send(now)
            for o in range(0, len(buf), segment)
        ]

    def bursts_to_send(self, now: float) -> list[Burst]:
        """Like :meth:`packets_to_send`, as :data:`Burst` runs a socket can hand to the kernel
        in one segmentation-offload send (a lone datagram is a run of one)."""
        out: list[Burst] = []
        self._advertised = self._window()
        if self._destroy_due:
            self._destroy_due = False
            out.append(_single(self._header(FLAG_DESTROY, self._snd_nxt)))
            return out
        if self.closed:
            if self._ack_due:  # lingering: keep acking so the peer's retransmissions stop
                self._ack_due = False
                out.append(_single(self._header(0, self._snd_nxt)))
            return out
        while self._messages:
            out.append(_single(self._header(FLAG_MESSAGE, self._snd_nxt) + self._messages.popleft()))
        sent_data = self._fill(now, out)
        ranges = self._ranges
        if self._ack_due and (not sent_data or ranges):
            out.append(_single(self._ack_packet()))
        elif self._heartbeat_due and not sent_data:
            out.append(_single(self._header(FLAG_HEARTBEAT, self._snd_nxt)))
        self._ack_due = False
        self._heartbeat_due = False
        if out:
            self._last_send = now
            self.packets_sent += len(out)  # bursts add their other packets as they are cut
        return out

    # --- sending internals ---------------------------------------------------------------------

    def _window(self) -> int:
        return max(0, self.recv_window_size - self.unread_bytes - self._reorder_bytes)

    def _header(self, flags: int, seq: int) -> bytes:
        ack = self._rcv_nxt
        return _HEADER.pack(
            MAGIC, VERSION, flags, 0, self.remote_id, self._advertised, seq & _U32, ack & _U32
        )

    def _ack_packet(self) -> bytes:
        ranges = self._ranges[:MAX_SACK_RANGES]
        if not ranges:
            return self._header(0, self._snd_nxt)
        return self._header(FLAG_SACK, self._snd_nxt) + b"".join(
            _RANGE.pack(start & _U32, end & _U32) for start, end in ranges
        )

    def _retransmit(self, pkt: _Out, now: float, out: list[Burst]) -> None:
        pkt.transmissions += 1
        pkt.sent_at = now
        pkt.lost = False
        if not pkt.in_flight:
            pkt.in_flight = True
            self._inflight_pkts += 1
            self._inflight_bytes += pkt.size
        pos = pkt.pos
        out.append(_single(self._header(pkt.flags, pkt.seq) + pkt.buf[pos : pos + pkt.size]))
        if self._rto_deadline is None:
            self._rto_deadline = now + self.rto
            self._last_progress = now

    def _fill(self, now: float, out: list[Burst]) -> bool:
        """Send retransmissions, then new packets, as far as cwnd and the peer's window allow."""
        start = len(out)
        cwnd = int(self.cwnd)
        while self._retx and self._inflight_pkts < max(cwnd, 1):
            pkt = self._retx.popleft()
            if pkt.lost and not pkt.sacked and pkt.seq >= self._snd_una:
                self.retransmits += 1
                self._retransmit(pkt, now, out)
        blocked_by_window = False
        while self._inflight_pkts < cwnd:
            available = self._pending_len
            if available == 0 and not (self._end_queued and self._end_seq is None):
                break
            if (
                self._mtu_probe_size
                and self._mtu_probe_seq is None
                and available > self.max_payload * (DUP_THRESH + 2)
                and self._inflight_bytes + self._mtu_probe_size <= self.remote_window
            ):
                self._send_probe(now, out)  # later packets will tell quickly if it is lost
                continue
            if available > self.max_payload and self._burst(now, cwnd, available, out):
                continue
            size = min(available, self.max_payload)
            if self._inflight_bytes + size > self.remote_window and self._inflight_pkts > 0:
                blocked_by_window = True
                break
            if self.remote_window == 0 and size > 0:
                blocked_by_window = True
                break
            flags = FLAG_DATA
            if size:
                pieces: list[bytes | memoryview] = []
                self._take(size, pieces)
                data = pieces[0] if len(pieces) == 1 and type(pieces[0]) is bytes else b"".join(pieces)
                self._pending_len -= size
            else:
                data = b""
                flags = 0
            if self._end_queued and not self._pending_len:
                flags |= FLAG_END
                self._end_seq = self._snd_nxt
            seq = self._snd_nxt
            self._snd_nxt = seq + 1
            self._out[seq] = _Out(seq, flags, data, 0, size, now)
            self._unacked_bytes += size
            self._inflight_pkts += 1
            self._inflight_bytes += size
            out.append(_single(self._header(flags, seq) + data))
        if self._snd_nxt > self._snd_una and self._rto_deadline is None:
            self._rto_deadline = now + self.rto
            self._last_progress = now
        if blocked_by_window and self._inflight_pkts == 0 and self._probe_deadline is None:
            self._probe_deadline = now + self.rto  # window probe: a heartbeat draws a fresh ack
        return len(out) > start

    def _send_probe(self, now: float, out: list[Burst]) -> None:
        """One full DATA packet padded (through the data offset) to the probe size. Its
        record keeps only the data, so a retransmission goes out unpadded."""
        size = self.max_payload
        pieces: list[bytes | memoryview] = []
        self._take(size, pieces)
        data = b"".join(pieces)
        self._pending_len -= size
        padding = self._mtu_probe_size - size
        seq = self._snd_nxt
        self._snd_nxt = seq + 1
        self._out[seq] = _Out(seq, FLAG_DATA, data, 0, size, now)
        self._mtu_probe_seq = seq
        self._unacked_bytes += size
        self._inflight_pkts += 1
        self._inflight_bytes += size
        header = _HEADER.pack(
            MAGIC,
            VERSION,
            FLAG_DATA,
            padding,
            self.remote_id,
            self._advertised,
            seq & _U32,
            self._rcv_nxt & _U32,
        )
        out.append(_single(header + bytes(padding) + data))

    def _burst(self, now: float, cwnd: int, available: int, out: list[Burst]) -> bool:
        """Cut as many full-size DATA packets as cwnd, the peer's window and one offload send
        allow straight into one buffer, headers and all. False if not even one fits
        (the caller's packet-at-a-time path then decides, e.g. to wait for the window)."""
        size = self.max_payload
        segment = size + HEADER_SIZE
        count = min(
            cwnd - self._inflight_pkts,
            (available - 1) // size,  # the packet with the last byte goes alone: it may carry END
            (self.remote_window - self._inflight_bytes) // size,
            MAX_BURST_BYTES // segment,
            MAX_BURST_PACKETS,
        )
        if count < 1:
            return False
        # No Python work per packet beyond taking a view of its payload: one join lays the
        # payloads out behind copies of the first header, then the sequence numbers (the only
        # field that differs) are written by strided slice assignment: only their low byte
        # unless it carries inside the burst, else all four bytes.
        first = self._snd_nxt
        payloads = self._payloads(count, size)
        low = first & _U32
        head = _HEADER.pack(
            MAGIC, VERSION, FLAG_DATA, 0, self.remote_id, self._advertised, low, self._rcv_nxt & _U32
        )
        buf = bytearray(head).join([b"", *payloads])
        if (low & 0xFF) + count <= 256:  # only the low byte of the sequence number changes
            buf[12::segment] = _BYTE_RAMP[low & 0xFF : (low & 0xFF) + count]
        else:
            if low + count <= _U32 + 1:
                seqs = array.array(_U32_CODE, range(low, low + count))
            else:
                seqs = array.array(_U32_CODE, [(low + i) & _U32 for i in range(count)])
            if sys.byteorder != "little":
                seqs.byteswap()
            raw = seqs.tobytes()
            for j in range(4):
                buf[12 + j :: segment] = raw[j::4]
        self._pending_len -= count * size
        seq = first + count
        self._runs[first] = _Run(first, count, buf, segment, size, now)
        self._run_starts.append(first)
        self._snd_nxt = seq
        nbytes = count * size
        self._unacked_bytes += nbytes
        self._inflight_pkts += count
        self._inflight_bytes += nbytes
        self.packets_sent += count - 1
        out.append((buf, segment))
        return True

    def _payloads(self, count: int, size: int) -> list[bytes | memoryview]:
        """The next ``count`` payloads of ``size`` unsent bytes (at least one byte stays
        unsent), cut from the written chunks by one C-level unpack per chunk; a payload
        spanning two writes is joined."""
        payloads: list[bytes | memoryview] = []
        chunks = self._chunks
        while len(payloads) < count:
            chunk, off = chunks[0], self._chunk_off
            inside = min((len(chunk) - off) // size, count - len(payloads))
            if inside:
                stop = off + inside * size
                payloads += _payload_struct(size, inside).unpack_from(chunk, off)
                if stop == len(chunk):
                    chunks.popleft()
                    stop = 0
                self._chunk_off = stop
            else:
                pieces: list[bytes | memoryview] = []
                self._take(size, pieces)
                payloads.append(b"".join(pieces))
        return payloads

    def _take(self, size: int, parts: list[bytes | memoryview]) -> None:
        """Append the next ``size`` unsent bytes to ``parts`` as views of the written chunks
        (the caller updates ``_pending_len``)."""
        chunks = self._chunks
        while size:
            chunk = chunks[0]
            off = self._chunk_off
            left = len(chunk) - off
            if size < left:
                parts.append(memoryview(chunk)[off : off + size])
                self._chunk_off = off + size
                return
            parts.append(memoryview(chunk)[off:] if off else chunk)
            chunks.popleft()
            self._chunk_off = 0
            size -= left

    def _on_ack(self, rwnd: int, raw_ack: int, sacks: tuple[tuple[int, int], ...], now: float) -> None:
        self.remote_window = rwnd
        ack = self._snd_una + ((raw_ack - self._snd_una) & _U32)
        if ack > self._snd_nxt:
            return  # acks something never sent: stale wrap-around or a confused peer
        if ack > self._snd_una:
            newly = 0
            sample: float | None = None
            out, runs = self._out, self._runs
            seq = self._snd_una
            while seq < ack:
                pkt = out.pop(seq, None)
                if pkt is not None:
                    if seq == self._mtu_probe_seq:
                        self._probe_answered(pkt.transmissions == 1)
                    newly += 1
                    self._unacked_bytes -= pkt.size
                    if pkt.in_flight:
                        self._inflight_pkts -= 1
                        self._inflight_bytes -= pkt.size
                    if pkt.transmissions == 1:
                        sample = now - pkt.sent_at
                    seq += 1
                    continue
                run = runs.pop(seq, None)
                if run is None:
                    seq += 1
                    continue
                # Everything below seq is acked, so this is the lowest run.
                del self._run_starts[0]
                take = min(run.count, ack - seq)
                nbytes = take * run.size
                newly += take
                self._unacked_bytes -= nbytes
                self._inflight_pkts -= take
                self._inflight_bytes -= nbytes
                sample = now - run.sent_at
                if take < run.count:
                    run.seq += take
                    run.count -= take
                    run.pos += take * run.segment
                    runs[run.seq] = run
                    self._run_starts.insert(0, run.seq)
                seq += take
            self._snd_una = ack
            if self._sack_done:
                self._sack_done = {k: v for k, v in self._sack_done.items() if v > ack}
            self._loss_scan = max(self._loss_scan, ack)
            if sample is not None:
                self._rtt_sample(sample)
            self._last_progress = now
            self._rto_deadline = now + self.rto if self._snd_nxt > ack else None
            if self._in_recovery:
                if ack >= self._recovery_point:
                    self._in_recovery = False
                    self.cwnd = max(self.ssthresh, 2.0)
                else:  # partial ack: the next hole is lost too
                    self._split_runs(ack, ack + 1)
                    first = self._out.get(ack)
                    if first is not None and not first.sacked and not first.lost:
                        self._mark_lost(first)
            else:
                self._grow(newly)
        if sacks:
            self._on_sacks(sacks, now)
        if self._snd_nxt > self._snd_una and self._highest_sacked >= self._loss_scan:
            self._detect_losses()
        if self.remote_window > 0:
            self._probe_deadline = None

    def _on_sacks(self, sacks: tuple[tuple[int, int], ...], now: float) -> None:
        una, nxt = self._snd_una, self._snd_nxt
        for raw_start, raw_end in sacks:
            start = una + ((raw_start - una) & _U32)
            end = una + ((raw_end - una) & _U32)
            if not una <= start < end <= nxt:
                continue
            # Peers repeat their whole SACK list on every ack; only walk what is new since the
            # last time a range with this start was seen.
            done = self._sack_done.get(start, start)
            if end <= done:
                continue
            self._sack_done[start] = end
            self._split_runs(done, end)
            for seq in range(done, end):
                pkt = self._out.get(seq)
                if pkt is None or pkt.sacked:
                    continue
                pkt.sacked = True
                if seq == self._mtu_probe_seq:
                    self._probe_answered(pkt.transmissions == 1)
                if pkt.in_flight:
                    pkt.in_flight = False
                    self._inflight_pkts -= 1
                    self._inflight_bytes -= pkt.size
                if pkt.transmissions == 1:
                    self._rtt_sample(now - pkt.sent_at)
                self._last_progress = now
            if end - 1 > self._highest_sacked:
                self._highest_sacked = end - 1

    def _detect_losses(self) -> None:
        """Every unsacked packet at least DUP_THRESH below the highest SACKed one is lost."""
        limit = self._highest_sacked - DUP_THRESH + 1
        seq = max(self._loss_scan, self._snd_una)
        found = False
        self._split_runs(seq, limit)
        while seq < limit:
            pkt = self._out.get(seq)
            if pkt is not None and not pkt.sacked and not pkt.lost and pkt.in_flight:
                self._mark_lost(pkt)
                if seq == self._mtu_probe_seq:
                    self._probe_answered(False)  # a lost probe says nothing about congestion
                else:
                    found = True
            seq += 1
        self._loss_scan = max(self._loss_scan, seq)
        if found and not self._in_recovery:
            self._in_recovery = True
            self._recovery_point = self._snd_nxt
            self.ssthresh = max(self.cwnd / 2, 2.0)
            self.cwnd = self.ssthresh

    def _split_runs(self, lo: int, hi: int) -> None:
        """Give every packet of the runs overlapping [lo, hi) its own :class:`_Out` record."""
        starts = self._run_starts
        if not starts or hi <= lo:
            return
        i = max(bisect.bisect_right(starts, lo) - 1, 0)
        first = self._runs[starts[i]]
        if first.seq + first.count <= lo:
            i += 1
        j = bisect.bisect_left(starts, hi, i)
        out = self._out
        for start in starts[i:j]:
            run = self._runs.pop(start)
            pos, segment, size, sent_at = run.pos, run.segment, run.size, run.sent_at
            for k in range(run.count):
                out[start + k] = _Out(start + k, FLAG_DATA, run.buf, pos + k * segment, size, sent_at)
        del starts[i:j]

    def _mark_lost(self, pkt: _Out) -> None:
        pkt.lost = True
        if pkt.in_flight:
            pkt.in_flight = False
            self._inflight_pkts -= 1
            self._inflight_bytes -= pkt.size
        self._retx.append(pkt)

    def _grow(self, newly: int) -> None:
        if newly <= 0:
            return
        if self.cwnd < self.ssthresh:
            self.cwnd = min(self.cwnd + newly, float(MAX_CWND))
        else:
            self.cwnd = min(self.cwnd + newly / self.cwnd, float(MAX_CWND))

    def _rtt_sample(self, rtt: float) -> None:
        rtt = max(rtt, 0.0)
        if self.srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.rto = min(max(self.srtt + 4 * self.rttvar, MIN_RTO), MAX_RTO)

    def _on_rto(self, now: float) -> None:
        if self._mtu_probe_seq is not None:
            self._probe_answered(False)
        self.ssthresh = max(self._inflight_pkts / 2, 2.0)
        self.cwnd = 1.0
        self._in_recovery = False
        self._retx.clear()
        self._split_runs(self._snd_una, self._snd_nxt)
        for seq in sorted(self._out):
            pkt = self._out[seq]
            if not pkt.sacked:
                pkt.lost = False
                self._mark_lost(pkt)
        self.rto = min(self.rto * 2, MAX_RTO)
        self._rto_deadline = now + self.rto if self._snd_nxt > self._snd_una else None

    # --- receiving internals -------------------------------------------------------------------

    def _on_sequenced(self, flags: int, raw_seq: int, data: bytes, events: list[StreamEvent]) -> None:
        self._ack_due = True
        nxt = self._rcv_nxt
        seq = nxt + ((raw_seq - nxt) & _U32)
        if seq >= nxt + MAX_REORDER_PACKETS or self.remote_ended:
            return  # before nxt (unwrapped to far ahead), beyond the buffer, or after END
        if seq != nxt:
            if seq not in self._reorder and len(data) <= self._window():
                self._reorder[seq] = (flags, data)
                self._reorder_bytes += len(data)
                self._add_range(seq)
            return
        if len(data) > self._window() and self.unread_bytes:
            return  # the application is not reading: refuse (the ack we owe advertises why)
        self._deliver(flags, data, events)
        nxt += 1
        ranges = self._ranges
        if ranges and ranges[0][0] == nxt:
            start, end = ranges.pop(0)
            for s in range(start, end):
                flags, data = self._reorder.pop(s)
                self._reorder_bytes -= len(data)
                if not self.remote_ended:
                    self._deliver(flags, data, events)
            nxt = end
        self._rcv_nxt = nxt

    def _deliver(self, flags: int, data: bytes, events: list[StreamEvent]) -> None:
        if data:
            self.unread_bytes += len(data)
            events.append(StreamData(data))
        if flags & FLAG_END:
            self.remote_ended = True
            events.append(StreamEnd())

    def _add_range(self, seq: int) -> None:
        ranges = self._ranges
        i = bisect.bisect_right(ranges, [seq, float("inf")])
        if i > 0 and ranges[i - 1][1] == seq:
            ranges[i - 1][1] = seq + 1
            if i < len(ranges) and ranges[i][0] == seq + 1:
                ranges[i - 1][1] = ranges[i][1]
                del ranges[i]
        elif i < len(ranges) and ranges[i][0] == seq + 1:
            ranges[i][0] = seq
        else:
            ranges.insert(i, [seq, seq + 1])

    # --- lifecycle -----------------------------------------------------------------------------

    def _maybe_finish(self, events: list[StreamEvent]) -> None:
        if (
            self.remote_ended
            and self._end_seq is not None
            and self._snd_una > self._end_seq
            and not self.closed
        ):
            events.append(self._close(None))

    def _close(self, error: HyperlobbyError | None) -> StreamClosed:
        self.closed = True
        self.error = error
        self._rto_deadline = None
        self._probe_deadline = None
        self._retx.clear()
        self._messages.clear()
        return StreamClosed(error)
