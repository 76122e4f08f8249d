"""Shared helpers for the benchmark scripts: a real project from a PyPI wheel, positions, stats."""

from __future__ import annotations

import ast
import os
import random
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"


def machine() -> str:
    """A one-line description of the machine the figures come from."""
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"


def wheel_project(name: str, version: str) -> Path:
    """Download `name==version` as a wheel (no deps) and unpack it under .bench/."""
    target = BENCH_DIR / f"{name}-{version}"
    if (target / ".unpacked").exists():
        return target
    wheels = BENCH_DIR / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = list(wheels.glob(f"{name.replace('-', '_')}-{version}-*.whl")) + list(
        wheels.glob(f"{name}-{version}-*.whl")
    )
    if not found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                str(wheels),
                f"{name}=={version}",
            ],
            check=True,
        )
        found = list(wheels.glob("*.whl"))
        found = [w for w in found if w.name.lower().startswith(name.replace("-", "_").lower())]
    with zipfile.ZipFile(found[0]) as archive:
        archive.extractall(target)
    (target / "pyproject.toml").write_text(f'[project]\nname = "{name}-bench"\n')
    (target / ".unpacked").write_text("")
    return target


def call_positions(
    root: Path, package: str, count: int, seed: int = 7
) -> list[tuple[Path, int, int]]:
    """`count` (file, 0-based line, column) positions of called names inside functions."""
    candidates: list[tuple[Path, int, int]] = []
    for path in sorted((root / package).rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name):
                        candidates.append((path, inner.func.lineno - 1, inner.func.col_offset))
                    elif isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute):
                        end = inner.func.end_col_offset or 0
                        col = end - len(inner.func.attr)
                        if inner.func.end_lineno == inner.func.lineno:
                            candidates.append((path, inner.func.lineno - 1, col))
    rng = random.Random(seed)
    return rng.sample(candidates, min(count, len(candidates)))


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> str:
    """p50 / p95 / max in ms."""
    return (
        f"p50 {statistics.median(values):7.1f} ms  p95 {percentile(values, 95):7.1f} ms  "
        f"max {max(values):7.1f} ms  (n={len(values)})"
    )


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wheel_project_for(name: str, version: str, python_version: str = "3.12") -> Path:
    """Like `wheel_project`, for a wheel that requires a newer Python than the one running.

    Its source is only read, never imported, so the interpreter's version does not matter.
    """
    wheels = BENCH_DIR / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    if not list(wheels.glob(f"{name.replace('-', '_')}-{version}-*.whl")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                python_version,
                "-d",
                str(wheels),
                f"{name}=={version}",
            ],
            check=True,
        )
    return wheel_project(name, version)
