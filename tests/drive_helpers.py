"""Shared helpers for the drive tests: the deterministic file bytes the JS scripts also make."""

from __future__ import annotations

import hashlib
from typing import Any


def gen(size: int, seed: int) -> bytes:
    """Same bytes as ``gen`` in interop/vectors/drive.js and interop/peers/drive_peer.js."""
    return bytes(((i * 31 + seed * 7 + (i >> 8)) & 255) for i in range(size))


def data_of(op: dict[str, Any]) -> bytes:
    if "gen" in op:
        return gen(op["gen"]["size"], op["gen"]["seed"])
    return str(op.get("text", "")).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
