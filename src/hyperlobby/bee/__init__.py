"""Hyperbee 2: a B-tree key/value store in one Hypercore, block-compatible with JS hyperbee.

Start with :class:`Hyperbee`; the block codecs are in :mod:`hyperlobby.bee.messages` and the
tree algorithms in :mod:`hyperlobby.bee.tree`.
"""

from hyperlobby.bee.bee import (
    BINARY,
    JSON,
    UTF8,
    Batch,
    BeeEntry,
    Codec,
    HistoryEntry,
    Hyperbee,
    Watcher,
    codec,
)
from hyperlobby.bee.messages import Header, Metadata, Node, YoloIndex

__all__ = [
    "BINARY",
    "JSON",
    "UTF8",
    "Batch",
    "BeeEntry",
    "Codec",
    "Header",
    "HistoryEntry",
    "Hyperbee",
    "Metadata",
    "Node",
    "Watcher",
    "YoloIndex",
    "codec",
]
