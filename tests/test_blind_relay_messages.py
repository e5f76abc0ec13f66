"""blind-relay's pair/unpair messages against vectors made by the npm package's own codecs.

``interop/vectors/blind_relay.js`` encodes a spread of messages with blind-relay's
``messages.pair``/``messages.unpair`` and records what its decoder makes of flag fields written
wider than one byte; Python must produce and read the same. Random bytes may only fail with
:class:`DecodeError`.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import load_vectors, run_node
from hyperlobby.encoding import compact
from hyperlobby.errors import DecodeError, EncodeError
from hyperlobby.swarm.hyperdht import blind_relay as br

VECTORS = load_vectors("blind_relay")


def _pair(case: dict[str, Any]) -> br.Pair:
    return br.Pair(case["isInitiator"], bytes.fromhex(case["token"]), case["id"], case["seq"])


@pytest.mark.parametrize("case", VECTORS["pairs"], ids=lambda c: f"id{c['id']}")
def test_pair_matches_js(case: dict[str, Any]) -> None:
    message = _pair(case)
    assert compact.encode(br.pair, message).hex() == case["encoded"]
    assert compact.decode(br.pair, bytes.fromhex(case["encoded"])) == message


@pytest.mark.parametrize("case", VECTORS["unpairs"], ids=lambda c: str(c["token"])[:8])
def test_unpair_matches_js(case: dict[str, str]) -> None:
    message = br.Unpair(bytes.fromhex(case["token"]))
    assert compact.encode(br.unpair, message).hex() == case["encoded"]
    assert compact.decode(br.unpair, bytes.fromhex(case["encoded"])) == message


@pytest.mark.parametrize("case", VECTORS["wide"], ids=lambda c: str(c["encoded"])[:6])
def test_wide_flag_fields_read_as_js_reads_them(case: dict[str, Any]) -> None:
    assert compact.decode(br.pair, bytes.fromhex(case["encoded"])) == _pair(case)


@pytest.mark.interop
def test_vectors_are_what_blind_relay_produces_today() -> None:
    assert json.loads(run_node("vectors/blind_relay.js", timeout=60)) == VECTORS


def test_a_token_must_be_32_bytes() -> None:
    with pytest.raises(EncodeError):
        compact.encode(br.pair, br.Pair(True, b"short", 1))
    with pytest.raises(EncodeError):
        compact.encode(br.unpair, br.Unpair(bytes(33)))


@given(st.booleans(), st.binary(min_size=32, max_size=32), st.integers(0, 2**53 - 1), st.integers(0, 2**32))
def test_pair_round_trips(initiator: bool, token: bytes, id_: int, seq: int) -> None:
    message = br.Pair(initiator, token, id_, seq)
    assert compact.decode(br.pair, compact.encode(br.pair, message)) == message


@given(st.binary(max_size=80))
def test_random_bytes_decode_or_fail_cleanly(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        compact.decode(br.pair, data)
    with contextlib.suppress(DecodeError):
        compact.decode(br.unpair, data)
