"""`python -m bench --quick` runs end to end (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, node_binary


@pytest.mark.interop
def test_bench_quick_runs() -> None:
    node_binary()
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "bench_core"],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out = proc.stdout.decode()
    for case in ("single_1k", "batch_1k", "single_1m"):
        assert case in out
