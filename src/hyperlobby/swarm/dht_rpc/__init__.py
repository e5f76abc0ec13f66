"""dht-rpc: the Kademlia RPC over UDP that HyperDHT is built on (wire-compatible with npm dht-rpc).

``messages`` (codecs, ids), ``routing`` (k-buckets) and ``query`` (iterative lookup) are
sans-IO; ``node`` is the asyncio :class:`DhtNode` that runs them on a UDP socket.
"""

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
    encode_message,
    encode_request,
    encode_response,
    peer_id,
)
from hyperlobby.swarm.dht_rpc.nat import NatSampler
from hyperlobby.swarm.dht_rpc.node import DhtNode, IncomingRequest, Reply, RequestDestroyed, RequestTimeout
from hyperlobby.swarm.dht_rpc.query import DownHint, Query, QueryReply
from hyperlobby.swarm.dht_rpc.routing import K, RoutingNode, RoutingTable, xor_distance

__all__ = [
    "DELAYED_PING",
    "DOWN_HINT",
    "ERROR_INVALID_TOKEN",
    "ERROR_UNKNOWN_COMMAND",
    "FIND_NODE",
    "PING",
    "PING_NAT",
    "Address",
    "DhtNode",
    "DownHint",
    "IncomingRequest",
    "K",
    "NatSampler",
    "Query",
    "QueryReply",
    "Reply",
    "Request",
    "RequestDestroyed",
    "RequestTimeout",
    "Response",
    "RoutingNode",
    "RoutingTable",
    "decode_message",
    "encode_message",
    "encode_request",
    "encode_response",
    "peer_id",
    "xor_distance",
]
