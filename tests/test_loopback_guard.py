"""The session-wide loopback guard of conftest.py really stops off-machine traffic."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

import conftest
from conftest import OffLoopbackError


@pytest.fixture(autouse=True)
def tripped_on_purpose() -> Iterator[None]:
    """These tests trip the guard deliberately; forget it so teardown does not fail them."""
    yield
    conftest._violations.clear()


def test_udp_send_off_loopback_is_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(OffLoopbackError):
            s.sendto(b"x", ("192.0.2.1", 9))  # TEST-NET-1: never routed, and never tried
        with pytest.raises(OffLoopbackError):
            s.sendmsg([b"x"], [], 0, ("198.51.100.7", 49737))
        s.sendto(b"x", ("127.0.0.1", 9))  # loopback passes


def test_connect_off_loopback_is_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(OffLoopbackError):
            s.connect(("203.0.113.5", 80))
        with pytest.raises(OffLoopbackError):
            s.connect_ex(("node1.hyperdht.org", 49737))


def test_ipv6_loopback_passes_and_others_do_not() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        with pytest.raises(OffLoopbackError):
            s.sendto(b"x", ("2001:db8::1", 9, 0, 0))
        try:
            s.sendto(b"x", ("::1", 9, 0, 0))
        except OSError as exc:  # no IPv6 on this host is fine; the guard let it through
            assert not isinstance(exc, OffLoopbackError)


def test_a_swallowed_attempt_is_still_remembered() -> None:
    # swallowed, as an error raised inside an asyncio callback would be
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, contextlib.suppress(OffLoopbackError):
        s.sendto(b"x", ("192.0.2.9", 9))
    assert conftest._violations == ["('192.0.2.9', 9)"]
