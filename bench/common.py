"""Shared by the benchmarks: running the JS reference's side of a benchmark."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INTEROP = ROOT / "interop"


def run_js(script: str, *args: object, timeout: float = 900) -> Any:
    """Run ``interop/<script>`` with node and return the JSON it prints (its measurements)."""
    proc = subprocess.run(
        ["node", script, *map(str, args)], cwd=INTEROP, capture_output=True, check=True, timeout=timeout
    )
    return json.loads(proc.stdout)
