"""Shared fixtures: running the pinned JavaScript reference in ``interop/``.

Interop tests never skip: a machine without node or without ``interop/node_modules`` fails
them with a message that says how to fix it (``make test`` installs both).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

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
