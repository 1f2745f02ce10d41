"""``make bench``: every benchmark in one run, each printing its table.

``python -m tests.bench [--quick] [NAME ...]`` — NAME is a module in this folder (e.g. ``backup``);
``--quick`` uses small sizes, to check the benchmarks themselves work.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

BENCHMARKS: list[str] = [
    "backup",
    "recovery",
    "versus",
    "bot_throughput",
    "journal",
    "export_memory",
    "fairness",
    "webhooks",
    "http_latency",
    "migrate",
    "bot_start",
]
"""Module names in run order; each has ``run(quick: bool) -> list[Table]``."""

OUT = Path(__file__).resolve().parents[2] / "bench-results"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("names", nargs="*", help=f"which benchmarks (default all: {BENCHMARKS})")
    args = parser.parse_args()
    names = args.names or BENCHMARKS
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {sorted(unknown)}")
    OUT.mkdir(exist_ok=True)
    printed: list[str] = []
    for name in names:
        started = time.monotonic()
        module = importlib.import_module(f"tests.bench.{name}")
        for table in module.run(quick=args.quick):
            text = table.render()
            print(text, flush=True)
            printed.append(text)
        print(f"({name}: {time.monotonic() - started:.0f} s)\n", file=sys.stderr)
    (OUT / ("quick.md" if args.quick else "latest.md")).write_text("\n".join(printed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
