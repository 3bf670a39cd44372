"""`python -m bench`: run every `bench/bench_*.py` module's `main()` in turn."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main() -> int:
    names = sorted(info.name for info in pkgutil.iter_modules(bench.__path__) if info.name.startswith("bench_"))
    for name in names:
        print(f"== bench.{name}", flush=True)
        status = importlib.import_module(f"bench.{name}").main()
        if status:
            return int(status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
