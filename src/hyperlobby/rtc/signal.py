"""The bytes of the lobby's signaling files, without IO.

The seed's lobby carries three kinds of file; these are their contents (before the lobby seals
them to their recipient):

* ``host.offer.bin`` → :class:`HostHello`: which room protocol the host speaks and its limits,
  so a guest can give up before spending an offer on a host it cannot talk to;
* ``<guest>.offer.bin`` → :class:`Offer`: the guest's SDP offer, candidates included (aiortc
  gathers before it signals, so there is no trickle and no further file);
* ``<guest>.answer.bin`` → :class:`Answer`, or :class:`Refusal` when the host will not take the
  guest (full, closed, unusable offer). A refusal in the answer slot lets the guest stop waiting
  at once instead of timing out.

Each is a small JSON object with a ``type``; anything else, or anything over
:data:`MAX_SIGNAL_BYTES`, is a :class:`DecodeError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import DecodeError
from .room import MAX_FRAME_BYTES

ROOM_PROTOCOL = "hyperlobby-room/1"
#: An SDP with host candidates is about 1 KiB; TURN and many interfaces stay far below this.
MAX_SIGNAL_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class HostHello:
    protocol: str = ROOM_PROTOCOL
    max_peers: int = 0
    max_frame: int = MAX_FRAME_BYTES


@dataclass(frozen=True, slots=True)
class Offer:
    sdp: str


@dataclass(frozen=True, slots=True)
class Answer:
    sdp: str


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    message: str = ""


Signal = HostHello | Offer | Answer | Refusal


def encode_signal(signal: Signal) -> bytes:
    obj: dict[str, Any]
    if isinstance(signal, HostHello):
        obj = {
            "type": "host",
            "protocol": signal.protocol,
            "max_peers": signal.max_peers,
            "max_frame": signal.max_frame,
        }
    elif isinstance(signal, Offer):
        obj = {"type": "offer", "sdp": signal.sdp}
    elif isinstance(signal, Answer):
        obj = {"type": "answer", "sdp": signal.sdp}
    else:
        obj = {"type": "refused", "reason": signal.reason, "message": signal.message}
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_signal(data: bytes) -> Signal:
    if len(data) > MAX_SIGNAL_BYTES:
        raise DecodeError("signal too large", size=len(data), limit=MAX_SIGNAL_BYTES)
    try:
        obj = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DecodeError("signal is not UTF-8 JSON") from exc
    if not isinstance(obj, dict):
        raise DecodeError("signal is not a JSON object")
    kind = obj.get("type")

    def text(key: str, required: bool = True) -> str:
        value = obj.get(key, None if required else "")
        if not isinstance(value, str):
            raise DecodeError(f"signal field {key!r} must be a string", type=kind)
        return value

    def count(key: str) -> int:
        value = obj.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise DecodeError(f"signal field {key!r} must be a non-negative integer", type=kind)
        return value

    if kind == "host":
        return HostHello(text("protocol"), count("max_peers"), count("max_frame"))
    if kind in ("offer", "answer"):
        sdp = text("sdp")
        if not sdp.startswith("v=0"):
            raise DecodeError("signal SDP does not start with v=0", type=kind)
        return Offer(sdp) if kind == "offer" else Answer(sdp)
    if kind == "refused":
        return Refusal(text("reason")[:200], text("message", required=False)[:1000])
    raise DecodeError("unknown signal type", type=kind if isinstance(kind, str) else None)
