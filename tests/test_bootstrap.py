"""Bootstrap lists: parsing, precedence (flag, environment, public default), the loopback guard,
the CLI's choice between --peer and the DHT, and ``hyperlobby dht bootstrap``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from hyperlobby.cli import build_parser
from hyperlobby.cli.dht import bootstrap_option
from hyperlobby.errors import SwarmError
from hyperlobby.swarm.bootstrap import (
    PUBLIC_BOOTSTRAP,
    BootstrapNode,
    check_loopback,
    loopback_only,
    parse_bootstrap,
    parse_node,
    resolve_bootstrap,
)

ROOT = Path(__file__).resolve().parent.parent
ENV_OFF: dict[str, str] = {}


def test_parse_forms() -> None:
    assert parse_node("127.0.0.1:49737") == BootstrapNode("127.0.0.1", 49737)
    assert parse_node(" 88.99.3.86@node1.hyperdht.org:49737 ") == BootstrapNode(
        "88.99.3.86", 49737, "node1.hyperdht.org"
    )
    assert parse_bootstrap(["127.0.0.1:1,127.0.0.2:2", "127.0.0.1:1 127.0.0.3:3"]) == (
        BootstrapNode("127.0.0.1", 1),
        BootstrapNode("127.0.0.2", 2),
        BootstrapNode("127.0.0.3", 3),
    )
    for bad in ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "example.org:49737", "[::1]:5", ":5", "x@y:1"]:
        with pytest.raises(SwarmError):
            parse_node(bad)


def test_public_default_is_hyperdhts_list() -> None:
    js = (ROOT / "interop/node_modules/hyperdht/lib/constants.js").read_text()
    for entry in PUBLIC_BOOTSTRAP:
        assert f"'{entry}'" in js
    chosen = resolve_bootstrap([], env=ENV_OFF)
    assert chosen.source == "public" and len(chosen.nodes) == 3 and not chosen.loopback
    assert chosen.addresses == [e.split("@")[0] + ":49737" for e in PUBLIC_BOOTSTRAP]


def test_precedence_flag_then_environment_then_public() -> None:
    env = {"HYPERLOBBY_BOOTSTRAP": "127.0.0.9:9, 127.0.0.8:8"}
    assert resolve_bootstrap(["127.0.0.1:5"], env=env).addresses == ["127.0.0.1:5"]
    from_env = resolve_bootstrap([], env=env)
    assert from_env.source == "env" and from_env.addresses == ["127.0.0.9:9", "127.0.0.8:8"]
    assert resolve_bootstrap([], env={"HYPERLOBBY_BOOTSTRAP": " "}).source == "public"


def test_guard_refuses_anything_off_loopback() -> None:
    on = {"HYPERLOBBY_LOOPBACK_ONLY": "1"}
    check_loopback(parse_bootstrap("127.0.0.1:5,127.3.2.1:6"), env=on)
    with pytest.raises(SwarmError, match="off loopback") as err:
        check_loopback(resolve_bootstrap([], env=ENV_OFF).nodes, env=on)
    assert "node1.hyperdht.org" in str(err.value)
    with pytest.raises(SwarmError):
        check_loopback(parse_bootstrap("127.0.0.1:5,10.0.0.1:6"), env=on)
    check_loopback(resolve_bootstrap([], env=ENV_OFF).nodes, env={"HYPERLOBBY_LOOPBACK_ONLY": "0"})
    # this test process runs under the guard (conftest sets it for itself and its children)
    assert loopback_only() and os.environ["HYPERLOBBY_LOOPBACK_ONLY"] == "1"


def _args(*argv: str) -> object:
    return build_parser().parse_args(["serve", *argv])


def test_cli_chooses_between_addresses_and_the_dht(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYPERLOBBY_BOOTSTRAP", raising=False)
    opt = bootstrap_option
    assert opt(_args("--peer", "127.0.0.1:4000")) is None  # addresses given: no DHT
    assert opt(_args("--listen", "127.0.0.1:0")) is None
    assert opt(_args("--no-dht")) is None
    assert opt(_args("--bootstrap", "127.0.0.1:7,127.0.0.2:8", "--peer", "127.0.0.1:4000")) == (
        "127.0.0.1:7",
        "127.0.0.2:8",
    )
    assert opt(_args("--bootstrap", "127.0.0.1:7", "--bootstrap", "127.0.0.1:9")) == (
        "127.0.0.1:7",
        "127.0.0.1:9",
    )
    monkeypatch.setenv("HYPERLOBBY_BOOTSTRAP", "127.0.0.5:5")
    assert opt(_args("--listen", "127.0.0.1:0")) == ("127.0.0.5:5",)  # the environment turns it on
    assert opt(_args("--listen", "127.0.0.1:0", "--no-dht")) is None
    monkeypatch.delenv("HYPERLOBBY_BOOTSTRAP")
    # nothing given means the public DHT, which the guard refuses loudly here
    with pytest.raises(SwarmError, match="off loopback"):
        opt(_args())
    with pytest.raises(SwarmError, match="off loopback"):
        opt(_args("--dht", "--peer", "127.0.0.1:4000"))
    host = build_parser().parse_args(["host", "--name", "R", "--bootstrap", "127.0.0.1:3"])
    assert opt(host) == ("127.0.0.1:3",)
    join = build_parser().parse_args(["join", "hyper://x", "--peer", "127.0.0.1:1"])
    assert opt(join) is None


async def _cli(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hyperlobby.cli",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
    )


async def test_serve_without_bootstrap_fails_loudly_under_the_guard(tmp_path: Path) -> None:
    proc = await _cli("serve", "--home", str(tmp_path / "h"))
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1 and b"off loopback" in err and b"Traceback" not in err


async def test_dht_bootstrap_command_runs_a_node_others_join() -> None:
    from hyperlobby.swarm.hyperdht.dht import HyperDht

    proc = await _cli("dht", "bootstrap", "--json")
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        info = json.loads(line)
        host, port = info["bootstrap"].rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        dht = await asyncio.wait_for(HyperDht.create(bootstrap=[info["bootstrap"]], ephemeral=False), 10)
        try:
            # the bootstrapper answered: it is in the newcomer's routing table
            table = [(a.host, a.port) for a in dht.node.nodes()]
            assert (host, int(port)) in table
        finally:
            await dht.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
