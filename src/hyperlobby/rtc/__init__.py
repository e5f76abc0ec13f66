"""WebRTC sessions over aiortc: a host that accepts guests up to ``max_peers`` and relays their
room over one data channel each (star topology), guests that join, talk and leave.

Signaling is a seam (:mod:`.signaling`): the lobby carries the offer and answer bytes. The room
protocol (:mod:`.room`) and the signal codec (:mod:`.signal`) are sans-IO; :mod:`.peer` is the
asyncio layer on aiortc; :mod:`.ice` keeps ICE on configured servers (and, for tests and the
demo, on loopback only).
"""

from .ice import IceConfig, IceServer
from .peer import Closed, RoomEvent, RtcGuest, RtcHost
from .room import MAX_FRAME_BYTES, Joined, Left, Message, Peers, Room
from .signal import ROOM_PROTOCOL, Answer, HostHello, Offer, Refusal, decode_signal, encode_signal
from .signaling import GuestSignaling, HostSignaling, MemorySignaling, answer_one, join, serve

__all__ = [
    "MAX_FRAME_BYTES",
    "ROOM_PROTOCOL",
    "Answer",
    "Closed",
    "GuestSignaling",
    "HostHello",
    "HostSignaling",
    "IceConfig",
    "IceServer",
    "Joined",
    "Left",
    "MemorySignaling",
    "Message",
    "Offer",
    "Peers",
    "Refusal",
    "Room",
    "RoomEvent",
    "RtcGuest",
    "RtcHost",
    "answer_one",
    "decode_signal",
    "encode_signal",
    "join",
    "serve",
]
