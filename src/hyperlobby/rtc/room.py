"""The room protocol spoken over each guest's data channel, and the host's relay, without IO.

Theory of operation
-------------------
The session is a star: every guest has one data channel to the host and nothing else, so the
host is the room. Everything on a channel is one *frame*: a JSON object (sent as a text data
channel message) whose ``type`` says what it is:

==========  =====================  ==========================================================
type        direction              fields
==========  =====================  ==========================================================
``msg``     guest → host → all     ``from`` (stamped by the host), ``body``, ``enc``?
``direct``  guest → host → one     ``from`` (stamped), ``to``, ``body``, ``enc``?
``join``    host → guests          ``from``: who arrived
``leave``   both                   ``from``: who left (host → guests), ``reason``
``peers``   host → new guest       ``to``: the guest's own id, ``peers``: everyone else
``ping``    host → guest           ``seq``
``pong``    guest → host           ``seq`` (echoed)
==========  =====================  ==========================================================

A body is text, or bytes carried as base64 with ``"enc": "base64"``; JSON keeps the protocol
readable in a browser console, which is where a web client of this room would debug it.

The host never trusts what a guest says about itself: ``from`` on a guest's frame is ignored and
replaced by the id the lobby admitted that connection under, so one guest cannot speak as
another. Frames a guest has no business sending (``join``, ``peers``, ``ping``), frames that are
not JSON, too large, or malformed are dropped with a reason the host logs; a hostile guest costs
the host one failed parse, never an exception that escapes.

:class:`Room` is the host's state: who is in, who said what to whom, who has gone quiet. It
takes time as an argument (``now``) and returns :class:`Send` instructions, so the asyncio host
is a thin loop around it and tests drive it with no network at all.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from ..errors import DecodeError, EncodeError

log = logging.getLogger(__name__)

#: Largest encoded frame either side accepts or sends. The SCTP stacks in browsers and aiortc
#: all agree on 64 KiB messages; a frame is one message, so a body can never need fragmenting.
MAX_FRAME_BYTES = 64 * 1024
#: Guest ids are lobby identities (64 hex chars); the cap leaves room for other id schemes.
MAX_ID_CHARS = 128
#: Leave reasons are short words or phrases; a guest cannot make the host relay an essay.
MAX_REASON_CHARS = 200

Body = str | bytes


@dataclass(frozen=True, slots=True)
class Message:
    """A room message: broadcast when ``to`` is None, direct otherwise. ``sender`` is empty on
    the way from a guest to the host (the host fills it in)."""

    sender: str
    body: Body
    to: str | None = None

    @property
    def direct(self) -> bool:
        return self.to is not None


@dataclass(frozen=True, slots=True)
class Joined:
    """``peer`` entered the room."""

    peer: str


@dataclass(frozen=True, slots=True)
class Left:
    """``peer`` left the room (host → guests), or the sender is leaving (guest → host, ``peer``
    empty). ``reason`` is for people: "left", "timeout", "channel closed", ..."""

    peer: str
    reason: str = "left"


@dataclass(frozen=True, slots=True)
class Peers:
    """The host's welcome: you are in as ``you``; ``peers`` are the others already here."""

    you: str
    peers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ping:
    seq: int


@dataclass(frozen=True, slots=True)
class Pong:
    seq: int


Frame = Message | Joined | Left | Peers | Ping | Pong


def check_peer_id(peer: object) -> str:
    """Validate a peer id (what the lobby admitted a guest as). Raises :class:`DecodeError`."""
    if not isinstance(peer, str) or not peer or len(peer) > MAX_ID_CHARS:
        raise DecodeError("peer id must be a non-empty string of at most 128 characters", id=peer)
    if not peer.isprintable() or peer != peer.strip():
        raise DecodeError("peer id must be printable without surrounding spaces", id=peer)
    return peer


def _body_fields(body: Body) -> dict[str, Any]:
    if isinstance(body, str):
        return {"body": body}
    if isinstance(body, bytes | bytearray | memoryview):
        return {"body": base64.b64encode(bytes(body)).decode("ascii"), "enc": "base64"}
    raise EncodeError("a message body is str or bytes", type=type(body).__name__)


def encode(frame: Frame) -> str:
    """One frame as the text sent on the data channel. Raises :class:`EncodeError` when the
    result would exceed :data:`MAX_FRAME_BYTES` (the caller learns before the peer drops it)."""
    obj: dict[str, Any]
    if isinstance(frame, Message):
        obj = {"type": "direct" if frame.to is not None else "msg"}
        if frame.sender:
            obj["from"] = frame.sender
        if frame.to is not None:
            obj["to"] = frame.to
        obj.update(_body_fields(frame.body))
    elif isinstance(frame, Joined):
        obj = {"type": "join", "from": frame.peer}
    elif isinstance(frame, Left):
        obj = {"type": "leave", "reason": frame.reason}
        if frame.peer:
            obj["from"] = frame.peer
    elif isinstance(frame, Peers):
        obj = {"type": "peers", "to": frame.you, "peers": list(frame.peers)}
    elif isinstance(frame, Ping):
        obj = {"type": "ping", "seq": frame.seq}
    elif isinstance(frame, Pong):
        obj = {"type": "pong", "seq": frame.seq}
    else:  # pragma: no cover - the union is closed; this guards callers that ignore types
        raise EncodeError("not a room frame", type=type(frame).__name__)
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    size = len(text.encode("utf-8"))
    if size > MAX_FRAME_BYTES:
        raise EncodeError("room frame too large", size=size, limit=MAX_FRAME_BYTES)
    return text


def _str_field(obj: dict[str, Any], key: str, *, required: bool) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise DecodeError(f"frame field {key!r} must be a string", field=key)
    return value


def _id_field(obj: dict[str, Any], key: str, *, required: bool) -> str:
    value = _str_field(obj, key, required=required)
    if not value and not required:
        return ""
    return check_peer_id(value)


def _seq(obj: dict[str, Any]) -> int:
    seq = obj.get("seq")
    # bool is an int in Python; JSON true is not a sequence number.
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**53:
        raise DecodeError("frame field 'seq' must be an integer in [0, 2**53)")
    return seq


def decode(data: str | bytes) -> Frame:
    """Parse one data channel message. Raises :class:`DecodeError` for anything that is not a
    well-formed frame; unknown extra fields are ignored so the protocol can grow."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_FRAME_BYTES:
        raise DecodeError("room frame too large", size=len(raw), limit=MAX_FRAME_BYTES)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DecodeError("room frame is not UTF-8 JSON") from exc
    if not isinstance(obj, dict):
        raise DecodeError("room frame is not a JSON object")
    kind = obj.get("type")
    if kind in ("msg", "direct"):
        sender = _id_field(obj, "from", required=False)
        to = _id_field(obj, "to", required=True) if kind == "direct" else None
        text = _str_field(obj, "body", required=True)
        enc = obj.get("enc")
        body: Body
        if enc is None:
            body = text
        elif enc == "base64":
            try:
                body = base64.b64decode(text.encode("ascii"), validate=True)
            except (UnicodeEncodeError, binascii.Error) as exc:
                raise DecodeError("message body is not valid base64") from exc
        else:
            raise DecodeError("unknown body encoding", enc=enc)
        return Message(sender, body, to)
    if kind == "join":
        return Joined(_id_field(obj, "from", required=True))
    if kind == "leave":
        reason = _str_field(obj, "reason", required=False) or "left"
        if len(reason) > MAX_REASON_CHARS:
            raise DecodeError("leave reason too long", size=len(reason))
        return Left(_id_field(obj, "from", required=False), reason)
    if kind == "peers":
        you = _id_field(obj, "to", required=True)
        peers = obj.get("peers")
        if not isinstance(peers, list):
            raise DecodeError("frame field 'peers' must be a list")
        return Peers(you, tuple(check_peer_id(p) for p in peers))
    if kind == "ping":
        return Ping(_seq(obj))
    if kind == "pong":
        return Pong(_seq(obj))
    raise DecodeError("unknown room frame type", type=kind if isinstance(kind, str) else repr(kind)[:40])


@dataclass(frozen=True, slots=True)
class Send:
    """Instruction from :class:`Room`: put ``data`` (an encoded frame) on ``to``'s channel."""

    to: str
    data: str


@dataclass(slots=True)
class Received:
    """What :meth:`Room.receive` made of one message from a guest."""

    sends: list[Send] = field(default_factory=list)
    #: Why the frame was dropped (None when it was used).
    dropped: str | None = None
    #: The guest said goodbye; the caller ends its connection.
    leaving: bool = False


class Room:
    """The host's room: membership, relay and liveness, with time passed in.

    ``ping_timeout`` is how long a member may stay silent (no frame at all, pongs included)
    before :meth:`tick` reports it gone; the host pings on every tick, so any live guest
    answers well within it as long as ticks are more frequent than the timeout.
    """

    def __init__(self, ping_timeout: float = 15.0) -> None:
        self.ping_timeout = ping_timeout
        self._last_seen: dict[str, float] = {}
        self._seq = 0
        #: Frames dropped since creation, by reason (for logs, tests and the curious).
        self.dropped: dict[str, int] = {}

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(self._last_seen)

    def __contains__(self, peer: object) -> bool:
        return peer in self._last_seen

    def __len__(self) -> int:
        return len(self._last_seen)

    def join(self, peer: str, now: float) -> list[Send]:
        """``peer``'s channel opened: welcome it with the member list, tell everyone else."""
        check_peer_id(peer)
        if peer in self._last_seen:
            return []
        others = tuple(self._last_seen)
        self._last_seen[peer] = now
        sends = [Send(peer, encode(Peers(peer, others)))]
        if others:
            joined = encode(Joined(peer))
            sends.extend(Send(p, joined) for p in others)
        return sends

    def leave(self, peer: str, reason: str) -> list[Send]:
        """``peer`` is gone (left, vanished, kicked): tell the others. Unknown peers are a no-op,
        so every failure path can call this without checking."""
        if self._last_seen.pop(peer, None) is None:
            return []
        if not self._last_seen:
            return []
        left = encode(Left(peer, reason[:MAX_REASON_CHARS] or "left"))
        return [Send(p, left) for p in self._last_seen]

    def receive(self, peer: str, data: str | bytes, now: float) -> Received:
        """One data channel message from ``peer``. Never raises: a bad frame comes back as
        ``dropped`` with the reason, and the room is unchanged."""
        out = Received()
        if peer not in self._last_seen:
            out.dropped = "sender is not in the room"
            return self._drop(peer, out)
        # Anything at all proves the guest is alive, even a frame we then refuse.
        self._last_seen[peer] = now
        try:
            frame = decode(data)
        except DecodeError as exc:
            out.dropped = exc.message
            return self._drop(peer, out)
        if isinstance(frame, Message):
            stamped = Message(peer, frame.body, frame.to)
            try:
                text = encode(stamped)
            except EncodeError:
                # The sender's frame fit, but its id made ours too big: refuse, do not truncate.
                out.dropped = "room frame too large once stamped"
                return self._drop(peer, out)
            if frame.to is None:
                out.sends = [Send(p, text) for p in self._last_seen if p != peer]
            elif frame.to in self._last_seen:
                out.sends = [Send(frame.to, text)]
            else:
                out.dropped = "direct message to a peer not in the room"
                return self._drop(peer, out)
        elif isinstance(frame, Pong):
            pass
        elif isinstance(frame, Left):
            out.leaving = True
        else:
            out.dropped = f"guests may not send {type(frame).__name__} frames"
            return self._drop(peer, out)
        return out

    def tick(self, now: float) -> tuple[list[Send], list[str]]:
        """Ping every member; return the pings and the members silent for longer than
        ``ping_timeout`` (the caller ends those and calls :meth:`leave` for each)."""
        expired = [p for p, seen in self._last_seen.items() if now - seen > self.ping_timeout]
        self._seq += 1
        ping = encode(Ping(self._seq))
        sends = [Send(p, ping) for p in self._last_seen if p not in expired]
        return sends, expired

    def _drop(self, peer: str, out: Received) -> Received:
        reason = out.dropped or "dropped"
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        log.info("room: dropped a frame from %s: %s", peer[:16], reason)
        return out
