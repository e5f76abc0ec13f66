"""HyperDHT (npm hyperdht 6.34.0): records, peer discovery and relaying on top of dht-rpc.

``messages``/``constants`` are the wire format; ``persistent`` (what a node stores for others)
and ``cache`` are sans-IO; ``router`` relays handshakes to servers; ``dht`` is the asyncio
:class:`HyperDht` node; ``announcer`` keeps a server announced.
"""

from hyperlobby.swarm.hyperdht.announcer import Announcer
from hyperlobby.swarm.hyperdht.dht import (
    PUBLIC_BOOTSTRAP,
    FindPeerReply,
    HyperDht,
    ImmutableRecord,
    LookupReply,
    MutableRecord,
    PeerRecord,
    PutResult,
    QueryFailed,
    QueryStream,
)
from hyperlobby.swarm.hyperdht.router import (
    BadHandshakeReply,
    BadHolepunchReply,
    ForwardState,
    HandshakeAnswer,
    HandshakeMessage,
    HandshakeResult,
    HolepunchAnswer,
    HolepunchMessage,
    HolepunchResult,
    Router,
)

__all__ = [
    "PUBLIC_BOOTSTRAP",
    "Announcer",
    "BadHandshakeReply",
    "BadHolepunchReply",
    "FindPeerReply",
    "ForwardState",
    "HandshakeAnswer",
    "HandshakeMessage",
    "HandshakeResult",
    "HolepunchAnswer",
    "HolepunchMessage",
    "HolepunchResult",
    "HyperDht",
    "ImmutableRecord",
    "LookupReply",
    "MutableRecord",
    "PeerRecord",
    "PutResult",
    "QueryFailed",
    "QueryStream",
    "Router",
]
