"""Run every `benchmarks/bench_*.py` (or the ones named on the command line) and print their tables."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def main(names: list[str]) -> int:
    found = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    unknown = [n for n in names if f"bench_{n}" not in found]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; expected some of {[f[6:] for f in found]}", file=sys.stderr)
        return 2
    for module in found:
        if not names or module[6:] in names:
            print(f"\n## {module[6:]}\n", flush=True)
            importlib.import_module(f"benchmarks.{module}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
