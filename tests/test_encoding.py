"""hyperlobby.encoding against the JS golden vectors (compact-encoding, z32, ids, protobuf)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import load_vectors, run_node
from hyperlobby.encoding import compact as c
from hyperlobby.encoding import ids, protobuf
from hyperlobby.errors import DecodeError, HyperlobbyError, InvalidKeyError

V: Any = load_vectors("encoding")


@pytest.mark.interop
def test_vectors_match_js() -> None:
    assert json.loads(run_node("vectors/encoding.js")) == V


# --- compact-encoding -------------------------------------------------------------------------


@pytest.mark.parametrize("case", V["uint"], ids=lambda x: str(x["value"]))
def test_uint(case: dict[str, Any]) -> None:
    assert c.encode(c.uint, case["value"]).hex() == case["hex"]
    assert c.decode(c.uint, bytes.fromhex(case["hex"])) == case["value"]


@pytest.mark.parametrize("case", V["uint_decode"], ids=lambda x: x["hex"] or "empty")
def test_uint_decode(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    if "ok" in case:
        assert c.decode(c.uint, data) == case["ok"]
    else:
        with pytest.raises(DecodeError):
            c.decode(c.uint, data)


@pytest.mark.parametrize("case", V["int"], ids=lambda x: str(x["value"]))
def test_int(case: dict[str, Any]) -> None:
    assert c.encode(c.int_, case["value"]).hex() == case["hex"]
    assert c.decode(c.int_, bytes.fromhex(case["hex"])) == case["value"]


@pytest.mark.parametrize("case", V["fixed_uint"], ids=lambda x: x["codec"])
def test_fixed_uint(case: dict[str, Any]) -> None:
    codec = getattr(c, case["codec"])
    assert c.encode(codec, case["value"]).hex() == case["hex"]
    assert c.decode(codec, bytes.fromhex(case["hex"])) == case["value"]


@pytest.mark.parametrize("case", V["string"], ids=lambda x: x["value"][:10])
def test_string(case: dict[str, Any]) -> None:
    assert c.encode(c.string, case["value"]).hex() == case["hex"]
    assert c.decode(c.string, bytes.fromhex(case["hex"])) == case["value"]


@pytest.mark.parametrize("case", V["buffer"], ids=lambda x: str(len(x["value"])))
def test_buffer(case: dict[str, Any]) -> None:
    value = bytes.fromhex(case["value"])
    assert c.encode(c.buffer, value).hex() == case["hex"]
    assert c.decode(c.buffer, bytes.fromhex(case["hex"])) == value


def test_optional_buffer_and_bool() -> None:
    assert c.encode(c.optional_buffer, None).hex() == V["optional_buffer_null"]
    assert c.decode(c.optional_buffer, b"\x00") is V["optional_buffer_decode_empty"]
    for case in V["bool"]:
        assert c.encode(c.bool_, case["value"]).hex() == case["hex"]
    for case in V["bool_decode"]:
        assert c.decode(c.bool_, bytes.fromhex(case["hex"])) is case["value"]


def test_arrays() -> None:
    for case in V["uint_array"]:
        assert c.encode(c.array(c.uint), case["value"]).hex() == case["hex"]
        assert c.decode(c.array(c.uint), bytes.fromhex(case["hex"])) == case["value"]
    for case in V["string_array"]:
        assert c.encode(c.array(c.string), case["value"]).hex() == case["hex"]
        assert c.decode(c.array(c.string), bytes.fromhex(case["hex"])) == case["value"]
    for case in V["uint32array"]:
        assert c.encode(c.uint32array, case["value"]).hex() == case["hex"]
        assert c.decode(c.uint32array, bytes.fromhex(case["hex"])) == case["value"]
    assert c.encode(c.fixed32, bytes((i * 37) & 0xFF for i in range(32))).hex() == V["fixed32"]
    assert "error" in V["array_too_long"]
    with pytest.raises(DecodeError):
        c.decode(c.array(c.uint), bytes.fromhex("fe01001000"))


@given(st.integers(min_value=0, max_value=2**53 - 1))
def test_uint_roundtrip(n: int) -> None:
    data = c.encode(c.uint, n)
    assert len(data) == c.uint_size(n)
    assert c.decode(c.uint, data, exact=True) == n


@given(st.lists(st.text()))
def test_string_array_roundtrip(values: list[str]) -> None:
    codec = c.array(c.string)
    assert c.decode(codec, c.encode(codec, values), exact=True) == values


@given(st.binary(max_size=64))
def test_compact_decoders_fuzz(data: bytes) -> None:
    for codec in (c.uint, c.int_, c.buffer, c.string, c.array(c.uint), c.uint32array, c.fixed32, c.uint64):
        with contextlib.suppress(DecodeError):
            c.decode(codec, data)  # type: ignore[arg-type]


# --- z32 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", V["z32_encode"], ids=lambda x: x["z32"][:12] or "empty")
def test_z32_encode(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["bytes"])
    assert ids.z32_encode(data) == case["z32"]
    assert ids.z32_decode(case["z32"]) == data


@pytest.mark.parametrize("case", V["z32_decode"], ids=lambda x: x["z32"] or "empty")
def test_z32_decode_quirks(case: dict[str, Any]) -> None:
    if "ok" in case:
        assert ids.z32_decode(case["z32"]).hex() == case["ok"]
    else:
        with pytest.raises(InvalidKeyError):
            ids.z32_decode(case["z32"])


@given(st.binary(max_size=80))
def test_z32_roundtrip(data: bytes) -> None:
    text = ids.z32_encode(data)
    assert set(text) <= set(ids.Z32_ALPHABET)
    assert len(text) == -(-len(data) * 8 // 5)
    assert ids.z32_decode(text) == data


@given(st.text(max_size=70))
def test_z32_decode_fuzz(text: str) -> None:
    with contextlib.suppress(InvalidKeyError):
        ids.z32_decode(text)


# --- ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", V["id_encode"], ids=lambda x: x["id"][:8])
def test_id_encode(case: dict[str, Any]) -> None:
    key = bytes.fromhex(case["key"])
    assert ids.encode_id(key) == case["id"]
    assert ids.decode_key(case["id"]) == key


@pytest.mark.parametrize("case", V["id_decode"], ids=lambda x: x["input"][:20] or "empty")
def test_id_decode(case: dict[str, Any]) -> None:
    if "ok" in case:
        assert ids.decode_key(case["input"]).hex() == case["ok"]
        assert ids.is_valid(case["input"])
    else:
        with pytest.raises(InvalidKeyError):
            ids.decode_key(case["input"])
        assert not ids.is_valid(case["input"])


def test_id_decode_buffers_and_normalize() -> None:
    for case in V["id_decode_buffer"]:
        data = bytes((i * 37) & 0xFF for i in range(case["length"]))
        if "ok" in case:
            assert ids.decode_key(data).hex() == case["ok"]
        else:
            with pytest.raises(InvalidKeyError):
                ids.decode_key(data)
    for case in V["id_normalize"]:
        assert ids.normalize(case["input"]) == case["id"]
    with pytest.raises(InvalidKeyError):
        ids.encode_id(b"short")
    with pytest.raises(InvalidKeyError):
        ids.decode_key(12345)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        ids.hex_decode("abc")
    assert ids.hex_decode("ABcd") == b"\xab\xcd"


@given(st.binary(min_size=32, max_size=32))
def test_id_roundtrip(key: bytes) -> None:
    text = ids.encode_id(key)
    assert len(text) == 52
    assert ids.decode_key(text) == key
    assert ids.decode_key(key.hex()) == key
    assert ids.decode_key("pear://" + text + "/x") == key
    assert ids.normalize(key.hex().upper()) == text


@given(st.one_of(st.text(max_size=80), st.binary(max_size=40)))
def test_decode_key_fuzz(value: str | bytes) -> None:
    with contextlib.suppress(InvalidKeyError):
        assert len(ids.decode_key(value)) == 32


# --- protobuf ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", V["varint"], ids=lambda x: str(x["value"]))
def test_varint(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    assert protobuf.encode_varint(case["value"]) == data
    assert protobuf.decode_varint(data) == (case["value"], len(data))
    assert protobuf.varint_size(case["value"]) == len(data)


@pytest.mark.parametrize("case", V["signed_varint"], ids=lambda x: str(x["value"]))
def test_signed_varint(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    assert protobuf.encode_signed_varint(case["value"]) == data
    assert protobuf.decode_signed_varint(data) == (case["value"], len(data))


def test_length_delimited() -> None:
    for case in V["pb_bytes"]:
        raw = case["value"].encode()
        assert protobuf.encode_length_delimited(raw).hex() == case["hex"]
        assert protobuf.decode_length_delimited(bytes.fromhex(case["hex"]))[0] == raw


def test_varint_limits() -> None:
    assert protobuf.encode_varint(2**64 - 1) == b"\xff" * 9 + b"\x01"
    assert protobuf.decode_varint(b"\xff" * 9 + b"\x01")[0] == 2**64 - 1
    with pytest.raises(DecodeError):
        protobuf.decode_varint(b"\xff" * 9 + b"\x02")  # above 2^64-1
    with pytest.raises(DecodeError):
        protobuf.decode_varint(b"\x80" * 10 + b"\x00")  # 11 bytes
    with pytest.raises(DecodeError):
        protobuf.decode_varint(b"\x80\x80")
    with pytest.raises(DecodeError):
        protobuf.decode_varint(b"")
    with pytest.raises(HyperlobbyError):
        protobuf.encode_varint(-1)


def test_fields() -> None:
    msg = protobuf.encode_bytes_field(1, b"key") + protobuf.encode_varint_field(3, 300)
    assert msg.hex() == "0a036b657918ac02"
    fields = protobuf.iter_fields(msg)
    assert fields == [
        (protobuf.FieldKey(1, protobuf.WIRE_LENGTH_DELIMITED), b"key"),
        (protobuf.FieldKey(3, protobuf.WIRE_VARINT), 300),
    ]
    assert protobuf.skip_field(msg, 2, 1) == 5
    with pytest.raises(DecodeError):
        protobuf.iter_fields(b"\x0a\x05ab")
    with pytest.raises(DecodeError):
        protobuf.iter_fields(b"\x0b")  # wire type 3 (groups)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varint_roundtrip(n: int) -> None:
    data = protobuf.encode_varint(n)
    assert protobuf.decode_varint(data) == (n, len(data))


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_zigzag_roundtrip(n: int) -> None:
    assert protobuf.zigzag_decode(protobuf.zigzag_encode(n)) == n
    assert protobuf.decode_signed_varint(protobuf.encode_signed_varint(n))[0] == n


@given(st.binary(max_size=40))
def test_protobuf_fuzz(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        protobuf.iter_fields(data)
    with contextlib.suppress(DecodeError):
        protobuf.decode_varint(data)
