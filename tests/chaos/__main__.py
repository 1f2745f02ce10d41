"""``python -m tests.chaos [--duration 600] [--seed 1] …`` — the chaos campaign (``make chaos``).
Prints the tables; exits 1 when anything is unexplained (see tests/chaos/campaign.py)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from tests.chaos.campaign import Options, run
from tests.chaos.faults import KINDS


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--seed", type=int, default=1, help="the order and timing of faults")
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--rate", type=float, default=5.0, help="updates per second, all users")
    parser.add_argument(
        "--settle", type=float, nargs=2, default=(4.0, 12.0), metavar=("MIN", "MAX"),
        help="seconds of workload alone after each fault (drawn from the seed)",
    )  # fmt: skip
    parser.add_argument(
        "--faults", help=f"comma-separated kinds (default: all): {', '.join(KINDS)}"
    )
    parser.add_argument("--once", action="store_true", help="each kind at most once")
    parser.add_argument("--short", action="store_true", help="the short form of test_chaos.py")
    parser.add_argument("--workdir", type=Path, help="kept; default a new folder in $TMPDIR")
    parser.add_argument("--keep", action="store_true", help="keep the work folder on success")
    parser.add_argument("--tmpfs-size", default="256m")
    args = parser.parse_args(argv)
    if args.short:
        options = Options.short(seed=args.seed)
    else:
        options = Options(
            duration=args.duration,
            seed=args.seed,
            users=args.users,
            rate=args.rate,
            settle=tuple(args.settle),
            once=args.once,
        )
    if args.faults:
        kinds = tuple(k.strip() for k in args.faults.split(",") if k.strip())
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            parser.error(f"unknown fault kinds {unknown}; known: {', '.join(KINDS)}")
        options.kinds = kinds
    options.workdir = args.workdir
    options.keep = args.keep
    options.tmpfs_size = args.tmpfs_size
    return options


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(f"chaos: stopped by signal {signum}")  # so every process is still killed


def main(argv: list[str] | None = None) -> int:
    options = parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _stop)
    result = run(options, out=lambda line: print(line, flush=True))
    print()
    print(result.render(), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
