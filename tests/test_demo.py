"""``make demo`` runs end to end (it is the README's main command, so it must not rot)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, node_binary


@pytest.mark.interop
def test_demo_runs_and_js_agrees() -> None:
    node_binary()
    proc = subprocess.run(
        [sys.executable, "-m", "hyperlobby.demo"], cwd=ROOT, capture_output=True, timeout=180, check=False
    )
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert "joined over the drive lobby" in out
    assert "got 'hello Bob!'" in out
    assert "session ended: session.json removed" in out
    assert "(live): this one arrives live" in out
    assert "identical to Python's" in out
    assert "JS log #1: read and verified by Python" in out
    assert "dialled Alice through the DHT: connected" in out
    assert "npm hyperswarm, bootstrapped from the Python DHT, found Alice and read her log: identical" in out
