"""`python -m bench --quick` runs end to end (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, node_binary

BENCH = ROOT / "bench"
MODULES = sorted(p.stem for p in BENCH.glob("bench_*.py"))


@pytest.mark.interop
@pytest.mark.parametrize("module", MODULES)
def test_bench_quick_runs(module: str) -> None:
    """Each benchmark runs end to end at tiny sizes, so none of them can rot unnoticed."""
    node_binary()
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", module],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert f"== {module} ==" in proc.stdout.decode()


@pytest.mark.interop
def test_core_bench_reports_every_case() -> None:
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
