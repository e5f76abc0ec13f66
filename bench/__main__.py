"""Run every ``bench/bench_*.py`` module: ``python -m bench [--quick] [names...]``."""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes (a smoke test, numbers mean nothing)"
    )
    parser.add_argument("names", nargs="*", help="only these modules (e.g. bench_core)")
    args = parser.parse_args(argv)
    here = Path(__file__).resolve().parent
    modules = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if args.names:
        modules = [m for m in modules if m in args.names]
    for name in modules:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name} ==", flush=True)
        run = module.main
        # Convention: ``main(quick: bool = False)``; a module without the flag runs full size.
        if "quick" in inspect.signature(run).parameters:
            run(quick=args.quick)
        else:
            run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
