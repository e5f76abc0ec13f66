"""Shared fixtures: running the pinned JavaScript reference in ``interop/``.

Interop tests never skip: a machine without node or without ``interop/node_modules`` fails
them with a message that says how to fix it (``make test`` installs both).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import settings

# CI runs the same examples every time (derandomized) and has no per-example deadline, so a
# busy machine cannot turn a slow example into a failure and a run is reproducible; locally,
# Hypothesis keeps exploring new examples. `HYPOTHESIS_PROFILE=dev` forces the local behaviour.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

ROOT = Path(__file__).resolve().parent.parent
INTEROP = ROOT / "interop"
VECTORS = INTEROP / "vectors"


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: interop tests need Node.js (make test installs the JS side)")
    if not (INTEROP / "node_modules" / "hypercore").is_dir():
        pytest.fail("interop/node_modules is missing: run `make npm` (or `make test`)")
    return node


def run_node(script: str | Path, *args: str, timeout: float = 60.0, input: bytes | None = None) -> bytes:
    """Run a script from ``interop/`` with node and return its stdout (fails the test on error)."""
    node = node_binary()
    proc = subprocess.run(
        [node, str(INTEROP / script), *args],
        cwd=INTEROP,
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"node {script} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}")
    return proc.stdout


def load_vectors(name: str) -> Any:
    """Golden vectors committed under ``interop/vectors/<name>.json`` (made by ``<name>.js``)."""
    return json.loads((VECTORS / f"{name}.json").read_text())


@pytest.fixture
def node() -> str:
    return node_binary()


# --- Loopback guard -------------------------------------------------------------------------
# Tests may only talk to loopback (or network namespaces they make). A wrong default somewhere
# (a public DHT bootstrap, a public STUN server) must fail the test that caused it instead of
# sending a packet off the machine, so every Python socket send/connect in the test process is
# checked. Unix sockets (str/bytes paths) and unconnected sends with no address pass through.

_F = TypeVar("_F", bound=Callable[..., Any])


class OffLoopbackError(AssertionError):
    """A test tried to reach an address that is not loopback."""


def _is_loopback(address: Any) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX path, or something that is not an IP address at all
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode()
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: resolving it would already leave loopback


_violations: list[str] = []


def _check(address: Any) -> None:
    if not _is_loopback(address):
        # Raised where it happens, and also remembered: inside an asyncio callback the raise
        # only reaches the loop's exception handler, so the test is failed at teardown too.
        _violations.append(repr(address))
        raise OffLoopbackError(f"test traffic to a non-loopback address: {address!r}")


def _guard_connect(original: _F) -> _F:
    def connect(self: socket.socket, address: Any) -> Any:
        _check(address)
        return original(self, address)

    return connect  # type: ignore[return-value]


def _guard_sendto(original: _F) -> _F:
    def sendto(self: socket.socket, data: Any, *args: Any) -> Any:
        _check(args[-1])
        return original(self, data, *args)

    return sendto  # type: ignore[return-value]


def _guard_sendmsg(original: _F) -> _F:
    def sendmsg(self: socket.socket, buffers: Any, *args: Any) -> Any:
        if len(args) >= 3 and args[2] is not None:
            _check(args[2])
        return original(self, buffers, *args)

    return sendmsg  # type: ignore[return-value]


# Processes the tests start (CLI nodes, bench children) inherit this: hyperlobby refuses any DHT
# bootstrap node off loopback, the public default included (hyperlobby.swarm.bootstrap).
os.environ["HYPERLOBBY_LOOPBACK_ONLY"] = "1"
os.environ.pop("HYPERLOBBY_BOOTSTRAP", None)


@pytest.fixture(autouse=True, scope="session")
def loopback_guard() -> Iterator[None]:
    cls = socket.socket
    saved = {name: getattr(cls, name) for name in ("connect", "connect_ex", "sendto", "sendmsg")}
    cls.connect = _guard_connect(saved["connect"])  # type: ignore[method-assign]
    cls.connect_ex = _guard_connect(saved["connect_ex"])  # type: ignore[method-assign]
    cls.sendto = _guard_sendto(saved["sendto"])  # type: ignore[method-assign]
    cls.sendmsg = _guard_sendmsg(saved["sendmsg"])  # type: ignore[method-assign]
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(cls, name, fn)


@pytest.fixture(autouse=True)
def no_off_loopback_traffic(loopback_guard: None) -> Iterator[None]:
    """Fail the test in which anything tried to leave loopback, even if the error was swallowed."""
    _violations.clear()
    yield
    tried, _violations[:] = list(_violations), []
    if tried:
        pytest.fail(f"this test tried to reach non-loopback addresses: {', '.join(tried)}")


# The JS hyperdht testnet fixtures (js, big_js, py) for every hyperdht interop module. Imported
# last: the helper's peer class imports names defined above from this module.
from hyperdht_js import big_js, js, py  # noqa: E402, F401
