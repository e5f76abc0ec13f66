"""Sans-IO @hyperswarm/secret-stream: Noise XX, then a libsodium secretstream per direction.

Theory of operation
-------------------
A connection goes through three phases, each driven purely by the bytes fed in:

1. **Handshake.** Framed Noise XX messages (``wire.noise``). The initiator writes msg1 from
   :meth:`SecretStream.initiate`; every reply the handshake needs is queued and handed out
   by :meth:`SecretStream.data_to_send`. When Noise completes this side knows ``tx``,
   ``rx``, the handshake hash and the peer's static key, and emits
   :class:`HandshakeComplete`.
2. **Id/header exchange.** Right away, each side queues one 56-byte frame: its stream id
   (keyed BLAKE2b of its role's namespace under the handshake hash) followed by the header
   of a fresh secretstream push state keyed with ``tx``. The first frame received after the
   handshake must be exactly that message from the other role; it initialises the pull
   state with ``rx``. The id check ties the header to this very handshake and role, so a
   reflected or replayed header fails here instead of producing garbage later.
3. **Open.** Each plaintext becomes one secretstream ``push`` (TAG_MESSAGE, no AD), framed
   with a uint24 length, so message boundaries survive. Data may be sent as soon as our own
   header is queued; there is no wait for the peer's header, because frames on one TCP
   direction arrive in order and our header always precedes our data.

Keepalives are encrypted empty messages. Like Hypercore's JS stream (which turns keepalive
on, and with it the zero-length filter), empty plaintexts are dropped on receipt by default.

Failure policy: anything a peer can send (garbage, truncation, an oversized length prefix, a
bad MAC, a wrong stream id) ends in exactly one :class:`Closed` event carrying a
:class:`~hyperlobby.errors.HyperlobbyError` (DecodeError for framing, HandshakeError up to
the header, ProtocolError afterwards). After that the stream is inert: further input is
ignored and :meth:`SecretStream.send` raises. Nothing a peer sends raises out of
:meth:`SecretStream.receive_data`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import nacl.bindings as sodium
import nacl.exceptions

from hyperlobby.crypto.hashes import blake2b256, namespace
from hyperlobby.errors import DecodeError, EncodeError, HandshakeError, HyperlobbyError, ProtocolError
from hyperlobby.wire.framing import HEADER_SIZE, MAX_FRAME, FrameDecoder, encode_header
from hyperlobby.wire.noise import (
    DHLEN,
    MACLEN,
    MAX_CIPHERTEXT,
    KeyPairLike,
    NoiseHandshake,
    NoiseKeyPair,
    NoiseResult,
)

NS_INITIATOR, NS_RESPONDER, NS_SEND = namespace("hyperswarm/secret-stream", 3)

ABYTES: int = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
HEADERBYTES: int = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
KEYBYTES: int = sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES
TAG_MESSAGE: int = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
ID_HEADER_BYTES = 32 + HEADERBYTES
# The largest ciphertext a frame can carry, hence the largest plaintext one send() may take.
MAX_PLAINTEXT = MAX_FRAME - ABYTES
# Largest legal Noise message (msg2 with a maximal payload). Frames before the data phase are
# capped here, so a hostile 16 MiB length prefix fails immediately instead of being buffered.
HANDSHAKE_MAX_FRAME = DHLEN + DHLEN + MACLEN + MAX_CIPHERTEXT

_push = sodium.crypto_secretstream_xchacha20poly1305_push
_pull = sodium.crypto_secretstream_xchacha20poly1305_pull


def stream_id(handshake_hash: bytes, is_initiator: bool) -> bytes:
    """The 32-byte id a side of role ``is_initiator`` puts in front of its header."""
    return blake2b256(NS_INITIATOR if is_initiator else NS_RESPONDER, key=handshake_hash)


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """Noise finished: the peer proved possession of ``remote_public_key``."""

    remote_public_key: bytes
    handshake_hash: bytes


@dataclass(frozen=True, slots=True)
class Message:
    """One decrypted application message (one JS ``write``)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """The stream ended: ``error`` is None for a clean end of input, else why it was torn down."""

    error: HyperlobbyError | None


Event = HandshakeComplete | Message | Closed


class Phase(enum.Enum):
    HANDSHAKE = "handshake"
    AWAIT_HEADER = "await-header"
    OPEN = "open"
    CLOSED = "closed"


class SecretStream:
    """One end of an encrypted stream, with no I/O of its own.

    Drive it with :meth:`initiate` (once, at start), :meth:`receive_data` for every chunk read,
    then write out :meth:`data_to_send`; encrypt with :meth:`send` / :meth:`keepalive` and
    write their return value. ``handshake`` skips Noise when a DHT already did it (spec §8).
    """

    def __init__(
        self,
        is_initiator: bool,
        key_pair: KeyPairLike | None = None,
        *,
        ephemeral_key_pair: KeyPairLike | None = None,
        handshake: NoiseResult | None = None,
        filter_empty: bool = True,
        max_message_size: int = MAX_PLAINTEXT,
    ) -> None:
        if not 0 <= max_message_size <= MAX_PLAINTEXT:
            raise ValueError(f"max_message_size must be in 0..{MAX_PLAINTEXT}")
        self.is_initiator = is_initiator
        self.filter_empty = filter_empty
        self.max_message_size = max_message_size
        self._decoder = FrameDecoder(HANDSHAKE_MAX_FRAME)
        self._outbox: list[bytes] = []
        self._push_state = sodium.crypto_secretstream_xchacha20poly1305_state()
        self._pull_state = sodium.crypto_secretstream_xchacha20poly1305_state()
        self._started = False
        self._noise: NoiseHandshake | None = None
        self._result: NoiseResult | None = None
        self.error: HyperlobbyError | None = None
        self.phase = Phase.HANDSHAKE
        if handshake is None:
            kp = key_pair if key_pair is not None else NoiseKeyPair.generate()
            self._noise = NoiseHandshake(is_initiator, kp, ephemeral_key_pair=ephemeral_key_pair)
            self.public_key: bytes = kp.public_key
        else:
            self._result = handshake
            self.public_key = handshake.public_key

    # -- properties -------------------------------------------------------------------

    @property
    def remote_public_key(self) -> bytes | None:
        return None if self._result is None else self._result.remote_public_key

    @property
    def handshake_hash(self) -> bytes | None:
        return None if self._result is None else self._result.handshake_hash

    @property
    def can_send(self) -> bool:
        """True once our header is queued, i.e. :meth:`send` will work."""
        return self.phase in (Phase.AWAIT_HEADER, Phase.OPEN)

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    # -- driving ----------------------------------------------------------------------

    def initiate(self) -> bytes:
        """Start the stream; returns the bytes to write first (msg1, a header, or nothing).

        The responder gets ``b""`` since it speaks only after msg1. Events caused by a
        pre-completed handshake are not reported (the caller supplied them). Calling it again,
        or after :meth:`receive_data` started the stream implicitly, just drains the queue.
        """
        if self._started:
            return self.data_to_send()
        self._started = True
        if self._noise is None:
            self._setup()
        elif self.is_initiator:
            self._queue_frame(self._noise.write_message())
        return self.data_to_send()

    def data_to_send(self) -> bytes:
        """Bytes queued by the stream itself (handshake replies, our header); empties the queue."""
        if not self._outbox:
            return b""
        out = b"".join(self._outbox)
        self._outbox.clear()
        return out

    def receive_data(self, data: bytes) -> list[Event]:
        """Consume raw bytes from the peer; returns what happened, in order.

        Call :meth:`data_to_send` afterwards: receiving handshake messages queues replies.
        """
        if self.phase is Phase.CLOSED:
            return []
        if not self._started:
            self.initiate()  # the first message may arrive before the caller started us
        events: list[Event] = []
        try:
            self._decoder.append(data)
            self._drain(events)
        except HyperlobbyError as err:
            events.append(self._fail(err))
        return events

    def receive_eof(self) -> list[Event]:
        """The raw transport ended; reports a clean close or what was cut short."""
        if self.phase is Phase.CLOSED:
            return []
        if self._decoder.buffered:
            err: HyperlobbyError = DecodeError(
                "connection ended inside a frame", buffered=self._decoder.buffered
            )
        elif self.phase is not Phase.OPEN:
            err = HandshakeError("connection ended before the handshake finished", phase=self.phase.value)
        else:
            self.phase = Phase.CLOSED
            return [Closed(None)]
        return [self._fail(err)]

    def close(self, error: HyperlobbyError | None = None) -> None:
        """Tear down locally: later input is ignored and sends fail."""
        if self.phase is not Phase.CLOSED:
            self.error = error
            self.phase = Phase.CLOSED
            self._outbox.clear()

    def send(self, plaintext: bytes) -> bytes:
        """Encrypt one message; returns its frame (``u24le(len) ‖ ciphertext``) to write as is."""
        if self.phase is Phase.CLOSED:
            raise ProtocolError("stream is closed", cause=repr(self.error))
        if self.phase is Phase.HANDSHAKE:
            raise ProtocolError("cannot send before the handshake completes")
        n = len(plaintext)
        if n > self.max_message_size:
            raise EncodeError(
                "message too large for one secret-stream frame", size=n, max=self.max_message_size
            )
        if type(plaintext) is not bytes:
            plaintext = bytes(plaintext)
        return encode_header(n + ABYTES) + _push(self._push_state, plaintext, None, TAG_MESSAGE)

    def keepalive(self) -> bytes:
        """An encrypted empty message: keeps NATs and idle timers on the peer's side happy."""
        return self.send(b"")

    # -- internals --------------------------------------------------------------------

    def _fail(self, err: HyperlobbyError) -> Closed:
        self.close(err)
        return Closed(err)

    def _queue_frame(self, payload: bytes) -> None:
        self._outbox.append(encode_header(len(payload)) + payload)

    def _drain(self, events: list[Event]) -> None:
        decoder = self._decoder
        while self.phase is not Phase.CLOSED:
            frame = decoder.next_frame()
            if frame is None:
                return
            if self.phase is Phase.OPEN:
                self._on_data(frame, events)
            elif self.phase is Phase.HANDSHAKE:
                self._on_handshake(frame, events)
            else:
                self._on_header(frame)

    def _on_handshake(self, frame: bytes, events: list[Event]) -> None:
        noise = self._noise
        if noise is None:  # pragma: no cover - phase and noise move together
            raise HandshakeError("no handshake in progress")
        noise.read_message(frame)
        if not noise.complete:
            self._queue_frame(noise.write_message())
        result = noise.result
        if result is None:
            return
        self._result = result
        self._noise = None
        self._setup()
        events.append(HandshakeComplete(result.remote_public_key, result.handshake_hash))

    def _setup(self) -> None:
        """Queue our id/header frame and wait for the peer's."""
        result = self._result
        if result is None:  # pragma: no cover - only called with a result
            raise HandshakeError("no handshake result")
        header = sodium.crypto_secretstream_xchacha20poly1305_init_push(
            self._push_state, result.tx[:KEYBYTES]
        )
        self._queue_frame(stream_id(result.handshake_hash, self.is_initiator) + header)
        self.phase = Phase.AWAIT_HEADER
        self._decoder.max_frame = HANDSHAKE_MAX_FRAME

    def _on_header(self, frame: bytes) -> None:
        result = self._result
        if result is None:  # pragma: no cover
            raise HandshakeError("no handshake result")
        if len(frame) != ID_HEADER_BYTES:
            raise HandshakeError("invalid header message: wrong length", length=len(frame))
        if frame[:32] != stream_id(result.handshake_hash, not self.is_initiator):
            raise HandshakeError("invalid header message: stream id does not match", id=frame[:32])
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(
            self._pull_state, frame[32:], result.rx[:KEYBYTES]
        )
        self.phase = Phase.OPEN
        self._decoder.max_frame = self.max_message_size + ABYTES

    def _on_data(self, frame: bytes, events: list[Event]) -> None:
        if len(frame) < ABYTES:
            raise ProtocolError("encrypted message too short", length=len(frame))
        try:
            plaintext, _tag = _pull(self._pull_state, frame, None)
        except nacl.exceptions.CryptoError as exc:
            raise ProtocolError("encrypted message failed authentication", length=len(frame)) from exc
        if plaintext or not self.filter_empty:
            events.append(Message(plaintext))


__all__ = [
    "ABYTES",
    "HANDSHAKE_MAX_FRAME",
    "HEADER_SIZE",
    "ID_HEADER_BYTES",
    "MAX_PLAINTEXT",
    "NS_INITIATOR",
    "NS_RESPONDER",
    "NS_SEND",
    "Closed",
    "Event",
    "HandshakeComplete",
    "Message",
    "Phase",
    "SecretStream",
    "stream_id",
]
