"""Timing: percentiles, repeated timed calls, CPU seconds from /proc, and the machine's load.

The machine the benchmarks run on is shared, so every figure comes with what the processes of
interest (the database server, the app, the benchmark) used and what everybody else used
meanwhile: a figure taken while other processes were busy is not a clean one.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
SLOW_WARMUP_MS = 5000.0  # a first run slower than this is counted: nothing left to warm up


def percentile(samples: list[float], q: float) -> float:
    """The nearest-rank `q` percentile (0 < q <= 1) of non-empty samples."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered), math.ceil(q * len(ordered))) - 1)]


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_ticks() -> tuple[int, int, int]:
    """(busy, iowait, total) clock ticks of the whole machine since boot, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0, 0
    idle, iowait = values[3], values[4] if len(values) > 4 else 0
    total = sum(values[:8])
    return total - idle - iowait, iowait, total


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return ""


class Meter:
    """Wall time, the CPU seconds of named processes, and the machine's load over a span
    (a `with` block, or from creation to `stop()`)."""

    def __init__(self, pids: dict[str, int | None]):
        self.pids = pids
        self.start()

    def start(self) -> Meter:
        """Begin (again) now."""
        self.cpu0 = {k: cpu_seconds(p) for k, p in self.pids.items()}
        self.ticks0 = machine_ticks()
        self.load0 = loadavg()
        self.t0 = time.perf_counter()
        return self

    def stop(self) -> Meter:
        """End the span: `seconds`, `cpu` (per name, and the machine's `*_pct`) and `load`."""
        self.seconds = time.perf_counter() - self.t0
        self.cpu = {k: cpu_seconds(p) - self.cpu0[k] for k, p in self.pids.items()}
        busy, iowait, total = (b - a for a, b in zip(self.ticks0, machine_ticks(), strict=True))
        ours = sum(self.cpu.values())
        # CPU that processes other than ours used meanwhile: the figures are only clean when ~0
        other = max(0.0, busy / CLK_TCK - ours)
        cores = os.cpu_count() or 1
        wall = total / CLK_TCK / cores
        self.cpu["machine_busy_pct"] = 100.0 * busy / total if total else 0.0
        self.cpu["machine_iowait_pct"] = 100.0 * iowait / total if total else 0.0
        self.cpu["other_processes_pct"] = 100.0 * other / (total / CLK_TCK) if total else 0.0
        self.load = {
            "wall_s": round(wall, 1),
            "machine_cpu_s": round(busy / CLK_TCK, 1),
            "ours_cpu_s": round(ours, 1),
            "others_cores_avg": round(other / wall, 2) if wall else 0.0,
            "loadavg_start": self.load0,
            "loadavg_end": loadavg(),
        }
        return self

    def __enter__(self) -> Meter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


async def settle(pid: int | None, max_wait: float = 900.0) -> float:
    """Wait until a server is idle (< 5 % of a core over half a second), e.g. after a request
    was abandoned on a timeout while the server still works on it; returns the wait."""
    t0 = time.perf_counter()
    prev = cpu_seconds(pid)
    while time.perf_counter() - t0 < max_wait:
        await asyncio.sleep(0.5)
        cur = cpu_seconds(pid)
        if cur - prev < 0.025:
            break
        prev = cur
    return time.perf_counter() - t0


@dataclass
class Timing:
    """Samples of one measured thing: milliseconds, or the failures met."""

    samples: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    nx_cpu_s: float = 0.0
    note: str = ""
    splits: list[dict[str, float]] = field(default_factory=list)  # per sample: ms of its parts

    @property
    def p50(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def p95(self) -> float | None:
        return percentile(self.samples, 0.95) if self.samples else None

    @property
    def p99(self) -> float | None:
        return percentile(self.samples, 0.99) if self.samples else None

    def split_p50(self, part: str) -> float | None:
        """Median ms of one named part of the samples; "rest" is what the parts leave."""
        if not self.splits:
            return None
        if part == "rest":
            values = [ms - sum(s.values()) for ms, s in zip(self.samples, self.splits, strict=True)]
        else:
            values = [s.get(part, 0.0) for s in self.splits]
        return statistics.median(values)

    def summary(self) -> dict:
        """The figures as JSON."""
        parts = [*sorted({k for s in self.splits for k in s}), "rest"] if self.splits else []
        return {
            "p50_ms": _r(self.p50),
            "p95_ms": _r(self.p95),
            "p99_ms": _r(self.p99),
            "samples_ms": [round(x, 1) for x in self.samples],
            "errors": self.errors,
            "nx_cpu_s": round(self.nx_cpu_s, 2),
            "note": self.note,
            **({"split_p50_ms": {k: _r(self.split_p50(k)) for k in parts}} if parts else {}),
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def one_line(exc: BaseException) -> str:
    """An exception's text on one line, cut at 200 characters."""
    return " ".join(str(exc).split())[:200]


async def measure(
    run, repeats: int, pid: int | None, cap=None, budget=None, what="call", keep=False
):
    """Run `run()` (returns (ms, result) or raises) once to warm up and then `repeats` times.

    The warm-up is not counted unless it took more than SLOW_WARMUP_MS (then it is a sample,
    so that slow things need one run fewer). With `cap` (s), a run that takes longer is
    abandoned and the server (`pid`) left to finish before going on; with `budget`, repeats
    stop once the samples add up to that many seconds. The first failure ends the series. With
    `keep`, each result (a dict of ms per part) is kept as the sample's split.
    """
    timing, result = Timing(), None
    cpu0 = cpu_seconds(pid)
    for i in range(repeats + 1):
        try:
            ms, result = await asyncio.wait_for(run(), cap)
        except TimeoutError:
            timing.errors.append(f"timeout after {cap:.0f} s")
            waited = await settle(pid)
            timing.note = f"the server kept working {waited:.0f} s on the abandoned {what}"
            break
        except Exception as exc:  # raised inside the app or the driver
            timing.errors.append(f"{type(exc).__name__}: {one_line(exc)}")
            await settle(pid)
            break
        if i > 0 or ms > SLOW_WARMUP_MS:
            timing.samples.append(ms)
            if keep:
                timing.splits.append(result)
        if len(timing.samples) >= repeats:
            break
        if budget is not None and sum(timing.samples) / 1000 > budget:
            timing.note = f"{len(timing.samples)} of {repeats} repeats (budget {budget:.0f} s)"
            break
    timing.nx_cpu_s = cpu_seconds(pid) - cpu0
    return timing, result


async def time_calls(make, repeats: int, pid: int | None, cap=None, budget=None):
    """Await `make()` (see `measure`); returns the timing and the last result."""

    async def run():
        t0 = time.perf_counter()
        result = await make()
        return (time.perf_counter() - t0) * 1000, result

    return await measure(run, repeats, pid, cap, budget, "call")
