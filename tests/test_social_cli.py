"""The social CLI: in-process without a node, through the control socket with one; errors a
person can act on, never a traceback."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from conftest import ROOT
from hyperlobby.cli import main
from hyperlobby.social.identity import Identity
from hyperlobby.social.records import canonical_url
from social_helpers import CLI, WAIT, NodeProcs

STRANGER = canonical_url(b"\x0b" * 32)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_without_a_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "h")
    code, out, err = run(capsys, "whoami", "--home", home)
    assert code == 1 and "hyperlobby init" in err and "Traceback" not in err
    code, out, _ = run(capsys, "init", "--name", "Sam", "--home", home, "--json")
    me = json.loads(out)
    assert code == 0 and me["name"] == "Sam" and me["friends"] == [] and me["url"].startswith("hyper://")
    assert run(capsys, "init", "--name", "Again", "--home", home)[0] == 1

    code, _, err = run(capsys, "friends", "add", "dat://" + (b"\x0b" * 32).hex(), "--home", home)
    assert code == 0 and "no node is running" in err
    code, _, err = run(capsys, "friends", "add", "dat://not-a-key", "--home", home)
    assert code == 1 and err.startswith("error:") and "Traceback" not in err
    code, _, err = run(capsys, "friends", "add", me["url"], "--home", home)
    assert code == 1 and "your own" in err
    code, out, _ = run(capsys, "friends", "ls", "--home", home, "--json")
    assert [f["url"] for f in json.loads(out)] == [STRANGER] and json.loads(out)[0]["status"] == "pending"

    code, out, _ = run(capsys, "profile", "set", "name", "Samuel", "--home", home, "--json")
    assert json.loads(out)["name"] == "Samuel"
    code, _, err = run(capsys, "profile", "set", "name", "", "--home", home)
    assert code == 1 and "empty" in err

    code, out, _ = run(capsys, "sessions", "--home", home, "--json")
    assert code == 0 and json.loads(out) == []
    code, _, err = run(
        capsys, "host", "start", "--name", "x", "--url", STRANGER, "--max-peers", "2", "--home", home
    )
    assert code == 1 and "needs a running node" in err
    code, _, err = run(capsys, "friends", "rm", canonical_url(b"\x0c" * 32), "--home", home)
    assert code == 1 and "not a friend" in err
    assert run(capsys, "friends", "rm", STRANGER, "--home", home)[0] == 0


async def _cli(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
    )
    out, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_through_a_node(tmp_path: Path) -> None:
    home = str(tmp_path / "n")
    assert (await _cli("init", "--name", "Nodey", "--home", home))[0] == 0
    async with NodeProcs() as nodes:
        await nodes.start("n", Path(home), "--interval", "0.5", "--no-dht")
        code, out, _ = await _cli("whoami", "--home", home, "--json")
        assert code == 0 and json.loads(out)["node"] is True
        code, _, err = await _cli("friends", "add", STRANGER, "--wait", "0.3", "--home", home)
        assert code == 0 and "could not be reached" in err and "Traceback" not in err
        code, _, err = await _cli("friends", "add", "hyper://nope", "--home", home)
        assert code == 1 and err.startswith("error:") and "Traceback" not in err
        start = ["host", "start", "--name", "R", "--url", STRANGER, "--max-peers", "2", "--home", home]
        code, out, _ = await _cli(*start, "--json")
        assert code == 0 and json.loads(out)["max_peers"] == 2
        code, _, err = await _cli("host", "peers", "5", "--home", home)
        assert code == 1 and "peers exceeds max_peers" in err
        code, out, _ = await _cli("whoami", "--home", home, "--json")
        assert json.loads(out)["hosting"]["name"] == "R"
        # a second node for the same home is refused
        code, _, err = await _cli("serve", "--home", home, "--no-dht")
        assert code == 1 and "in use" in err
        assert await nodes.stop("n") == 0
    # the clean stop (SIGTERM) removed session.json from the archive
    with Identity.open(home) as ident:
        assert ident.session() is None and ident.profile().name == "Nodey"
