"""The machine report every benchmark prints and keeps, and the small helpers of its output.

Figures from a shared 2-core machine only mean something beside the machine, the versions and
the code they were measured on; `machine()` gathers those once per run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
BASE_PACKAGES = ("nx-27017", "neosqlite", "pymongo", "beanie")


def package_version(name: str) -> str:
    """The installed version of a distribution, or "not installed"."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _sh(*cmd: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    return ""


def machine(*packages: str) -> dict:
    """Cores, CPU, memory, Python, OS, package versions, date, load and the code's commit."""
    mem = _sh("free", "-h").splitlines()
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {
        "nproc": _sh("nproc"),
        "cpu": cpu,
        "memory": mem[1].split()[1] if len(mem) > 1 else "",
        "python": platform.python_version(),
        "os": platform.platform(),
    }
    for name in dict.fromkeys([*BASE_PACKAGES, *packages]):
        info[name] = package_version(name)
    git = ("git", "-C", str(ROOT))
    dirty = _sh(*git, "status", "--porcelain", "--", "chatadmin", "pyproject.toml")
    info.update(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        loadavg_at_start=" ".join(f"{x:.2f}" for x in os.getloadavg()),
        commit=_sh(*git, "rev-parse", "--short", "HEAD"),
        # uncommitted product changes are measured too (the package is installed editable)
        product_tree="dirty" if dirty else "clean",
    )
    return info


def machine_line(info: dict, *packages: str) -> str:
    """The machine report on one line, naming the versions of `packages`."""
    versions = ", ".join(f"{name} {info.get(name, package_version(name))}" for name in packages)
    return (
        f"{info['nproc']} cores ({info['cpu']}), {info['memory']} RAM, Python {info['python']}"
        + (f", {versions}" if versions else "")
        + f", {info['date']}; commit {info['commit']}, product tree {info['product_tree']}"
    )


def verdict(ok: bool) -> str:
    """PASS or MISS."""
    return "PASS" if ok else "MISS"


def goal_lines(goals: dict[str, str]) -> list[str]:
    """The goals block of a report: a blank line, a heading, a line per goal."""
    return ["", "  goals", *(f"    {v}  {name}" for name, v in goals.items())]


def figures_head(script: str, info: dict, **more) -> dict:
    """The start of a run's JSON figures: the command as run, the machine, then `more`."""
    return {"command": " ".join([f"bench/{script}", *sys.argv[1:]]), "machine": info, **more}


def say(line: str, end: str = "\n") -> None:
    """A progress line on stderr (the report goes to stdout)."""
    print(line, file=sys.stderr, end=end, flush=True)


def stamp() -> str:
    """This moment in UTC, for file and database names."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")


def write_json(path: Path, figures: dict) -> Path:
    """Write the figures as indented JSON (making the folder); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return path


def write_results(args, name: str, when: str, figures: dict) -> Path:
    """Write a run's figures, with its arguments, to `--results-dir`/NAME-WHEN.json."""
    figures["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    return write_json(args.results_dir / f"{name}-{when}.json", figures)
