"""Command-line pieces the benchmark scripts share: a list of sizes, the seed / keep-data /
results-dir options, and running an async main that stops its servers on Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bench.common.report import RESULTS, say
from bench.common.servers import stop_on_sigterm


def sizes_arg(text: str) -> list[int]:
    """A comma-separated list of sizes (`_` allowed in numbers), ascending, without repeats."""
    try:
        sizes = sorted({int(x.replace("_", "")) for x in text.split(",") if x.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of sizes: {text!r}") from exc
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"sizes must be at least 1: {text!r}")
    return sizes


def add_size_args(ap: argparse.ArgumentParser, default: int, what: str, growth: str) -> None:
    """--messages (`what`, default `default`) and --sizes (`growth`: how the run grows); see
    `parse`."""
    ap.add_argument("--messages", type=int, default=default, help=f"{what} ({default})")
    ap.add_argument(
        "--sizes",
        type=sizes_arg,
        default=None,
        help=f"{growth}; the last is the number of messages (default: --messages alone)",
    )


def parse(ap: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse; with --sizes, --messages becomes the last size, else the only one."""
    args = ap.parse_args(argv)
    if hasattr(args, "sizes"):
        args.sizes = args.sizes or [args.messages]
        args.messages = args.sizes[-1]
    return args


def add_plan_args(ap: argparse.ArgumentParser) -> None:
    """--orgs, --users, --days and --batch: the shape of seeded conversations
    (`bench.common.seeding.plan_threads`) and the insert_many batch."""
    ap.add_argument("--orgs", type=int, default=5, help="orgs (5)")
    ap.add_argument("--users", type=int, default=500, help="end users (500)")
    ap.add_argument("--days", type=int, default=90, help="days the messages span (90)")
    ap.add_argument("--batch", type=int, default=5_000, help="insert_many batch (5000)")


def add_run_args(ap: argparse.ArgumentParser, seed: int = 27017) -> None:
    """--seed, --keep-data and --results-dir."""
    ap.add_argument("--seed", type=int, default=seed, help=f"random seed of the data ({seed})")
    ap.add_argument("--keep-data", action="store_true", help="keep the temporary data dir")
    ap.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS,
        help="where the figures go (bench/results)",
    )


def run_main(main_async) -> int:
    """Run the coroutine `main_async`; Ctrl-C and SIGTERM unwind it (servers stopped): 130."""
    stop_on_sigterm()
    try:
        return asyncio.run(main_async)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
